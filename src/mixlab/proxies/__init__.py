"""proxies stage."""
