//! The one place that builds runsc command lines.
