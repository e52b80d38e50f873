//! The HTML page with an SVG timeline.
