"""The log for agents over MCP: the same build and Search the website serves.

`server` and `tools` (with `schemas`, the tools' output schemas) make the SDK's server; `hosts` and `http`
serve it at /mcp under a WSGI server, `front` on the asyncio worker's own loop; `stdio` serves it (or a
remote log) on stdio.
This package imports nothing by itself: the SDK is loaded when a worker first needs it (blog/mcp/http.py).
It never imports web or tor.
"""
