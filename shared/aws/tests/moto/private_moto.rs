//! A private moto for one process, started with the project's own scripts. Shared by the
//! pipai-aws moto tests (`common.rs`) and the market-data bench (`cli/benches/market_data.rs`
//! includes this file with `#[path]`), so there is one way to start it.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cmd` to completion; panics with its output if it fails.
pub fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts moto on a free port (`infra/moto.sh`: it serializes DynamoDB requests, as DynamoDB's
/// conditional writes are atomic; without it the create race and failed transactions misbehave),
/// creates the resources of template.yaml in it (`infra/create_resources.py`), and leaves a
/// watchdog that stops it when this process ends, however it ends. Returns the port and the
/// variables `create_resources.py` wrote (endpoint, table, queue and bucket names).
pub fn start(repo: &Path) -> (u16, HashMap<String, String>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    run(&mut Command::new(repo.join("infra/venv.sh")), "infra/venv.sh");
    run(
        Command::new(repo.join("infra/moto.sh")).arg("start").env("MOTO_PORT", port.to_string()),
        "infra/moto.sh start",
    );
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; MOTO_PORT={port} '{moto}' stop >/dev/null 2>&1; rm -f '{log}'",
        pid = std::process::id(),
        moto = repo.join("infra/moto.sh").display(),
        log = repo.join(format!(".local/moto-{port}.log")).display()
    );
    // `setsid --fork` returns at once, leaving the watchdog to init (own session: survives Ctrl-C).
    let started = Command::new("setsid")
        .args(["--fork", "bash", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the moto watchdog");
    assert!(started.success(), "setsid --fork failed: {started}");
    let env_file = std::env::temp_dir().join(format!("pipai-private-moto-{port}.env"));
    run(
        Command::new(repo.join(".venv/bin/python"))
            .arg(repo.join("infra/create_resources.py"))
            .args(["--port", &port.to_string(), "-q", "--env-file"])
            .arg(&env_file),
        "infra/create_resources.py",
    );
    let text = std::fs::read_to_string(&env_file).expect("the env file create_resources.py wrote");
    let _ = std::fs::remove_file(&env_file);
    let vars = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(|c| c == '"' || c == '\'').to_string()))
        .collect();
    (port, vars)
}
