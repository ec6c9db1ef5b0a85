use clap::Parser;

fn main() {
    let cli = creditphone::cli::Cli::parse();
    if let Err(e) = actix_web::rt::System::new().block_on(creditphone::cli::run(cli)) {
        eprintln!("creditphone: {e:#}");
        std::process::exit(1);
    }
}
