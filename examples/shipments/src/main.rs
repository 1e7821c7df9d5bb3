//! The shipments application: Eventline with one domain.

fn main() -> std::process::ExitCode {
    eventline_app::App::new().domain(shipments::domain()).run()
}
