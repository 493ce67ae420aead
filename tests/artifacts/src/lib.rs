//! Paths of the sample components built for the tests.
