"""The browser page's static files (HTML, one script, one stylesheet), served by `api.web`."""
