"""Residents' pages: subscribe (also embedded in the city homepage), confirm,
unsubscribe, re-confirm, the archive, the click redirect, the city's logo and
uploaded images. Korean or English; every page works without JavaScript."""
