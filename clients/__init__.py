"""omnitill clients: `web/` (static pages served by the engine) and `python/` (the trio SDK)."""
