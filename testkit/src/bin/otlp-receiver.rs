//! `otlp-receiver`: testkit's OTLP receiver as a process, for the benchmark's traced runs.
//! Prints one line, `otlp-receiver grpc=http://127.0.0.1:P1 http=http://127.0.0.1:P2`, then
//! serves until SIGTERM/SIGINT or stdin closes, and prints how many spans it received.

fn main() -> anyhow::Result<()> {
    let receiver = edgeflow_testkit::otlp::OtlpReceiver::start()?;
    println!(
        "otlp-receiver grpc={} http={}",
        receiver.grpc_endpoint(),
        receiver.http_endpoint()
    );
    // Stdin is the lifeline: the harness closes it (or ends the process) when the run is over.
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {}
    eprintln!("otlp-receiver: {} spans received", receiver.spans().len());
    Ok(())
}
