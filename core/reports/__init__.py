"""Reports written for people to read: HTML pages with SVG charts."""
