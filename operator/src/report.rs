//! How a replay process and a projector publish into a Projection's status: the functions
//! live in `eventline-projection-api` (the services use them without linking the controller);
//! their tests run here, against the operator's mocked API server.

pub use eventline_projection_api::report::*;

#[cfg(test)]
mod tests;
