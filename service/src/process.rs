//! Process plumbing every seckill binary shares: logging set-up and the shutdown signal.

/// Installs the tracing subscriber (`RUST_LOG`, default `info`; JSON lines if asked).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The body of a service binary: tracing, a multi-threaded runtime, then `service` (which
/// returns the exit code). Start-up failures print one clear line and exit non-zero.
pub fn run_service<F, Fut>(name: &str, log_json: bool, service: F) -> std::process::ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = std::process::ExitCode>,
{
    init_tracing(log_json);
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(service()),
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
