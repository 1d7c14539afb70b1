"""HTTP plumbing every audience shares: the server and its timeouts, security
headers, HEAD, request metrics, bounded parameters, form and upload reading,
and the dependency types handlers declare."""
