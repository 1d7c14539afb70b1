"""What the city says: news items, feeds, issues and their rendering."""
