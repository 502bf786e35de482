"""The operators' dashboard under /ui: server-rendered pages, SVG charts, sign-in, and actions through the API's
own domain functions."""
