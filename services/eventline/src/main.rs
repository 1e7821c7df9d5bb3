//! The `eventline` binary: Eventline's example application, with the three example domains.
//! Removing a domain is deleting its line.

fn main() -> std::process::ExitCode {
    eventline_app::App::new()
        .domain(eventline_bank::domain())
        .domain(eventline_posts::domain())
        .domain(eventline_orders::domain())
        .run()
}
