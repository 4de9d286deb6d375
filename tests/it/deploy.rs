//! The deployment files: the systemd unit (checked by `systemd-analyze`, as systemd would load it),
//! its user and environment files, the agreement between the unit, the Dockerfile and the
//! settings, and the container image itself, built with buildah and health-checked by
//! `deploy/test-image.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT_EXEC_START: &str = "ExecStart=/usr/local/bin/edgeflow worker";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The unit as it would be installed, but starting the binary this test run built: `verify`
/// insists that ExecStart's program exists.
fn installable_unit(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    assert!(
        read("deploy/systemd/edgeflow.service").contains(UNIT_EXEC_START),
        "the unit must start `{UNIT_EXEC_START}`"
    );
    installable_unit_from("deploy/systemd/edgeflow.service", dir, name, edit)
}

fn installable_unit_from(
    source: &str,
    dir: &Path,
    name: &str,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    let unit = read(source);
    assert!(
        unit.contains("ExecStart=/usr/local/bin/edgeflow "),
        "the unit must start /usr/local/bin/edgeflow"
    );
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/edgeflow",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_edgeflow")),
    );
    let path = dir.join(name);
    std::fs::write(&path, edit(unit)).unwrap();
    path
}

/// `systemd-analyze verify` exits 0 even for unknown keys and bad values (it only warns), so
/// what it prints is the verdict.
fn verify(unit: &Path) -> String {
    let (_, text) = run(Command::new("systemd-analyze").arg("verify").arg(unit));
    text
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installable_unit(dir.path(), "edgeflow.service", |u| u);
    let report = verify(&unit);
    assert!(
        report.trim().is_empty(),
        "systemd-analyze verify reports problems:\n{report}"
    );
}

#[test]
fn systemd_analyze_verify_reports_a_broken_copy_of_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let misspelled = installable_unit(dir.path(), "misspelled.service", |u| {
        u.replace("ProtectSystem=strict", "ProtectSytem=strict")
    });
    let report = verify(&misspelled);
    assert!(
        report.contains("Unknown key 'ProtectSytem'"),
        "a misspelled directive went unreported:\n{report}"
    );

    let bad_value = installable_unit(dir.path(), "bad-value.service", |u| {
        u.replace("Restart=on-failure", "Restart=sometimes")
    });
    let report = verify(&bad_value);
    assert!(
        report.contains("sometimes"),
        "a bad Restart= value went unreported:\n{report}"
    );
}

/// `systemd-analyze security` scores how exposed a service is (0 best, 10 worst); the unit's
/// hardening keeps it near 1. Without it the same unit scores far worse, so the bound bites.
#[test]
fn the_systemd_unit_stays_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let security = |unit: &Path| {
        run(Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(unit))
    };
    let unit = installable_unit(dir.path(), "edgeflow.service", |u| u);
    let (out, report) = security(&unit);
    assert!(out.status.success(), "exposure above 2.0:\n{report}");

    let unhardened = installable_unit(dir.path(), "unhardened.service", |u| {
        let (head, _) = u
            .split_once("# Hardening")
            .expect("a `# Hardening` block in the unit");
        format!("{head}\n[Install]\nWantedBy=multi-user.target\n")
    });
    let (out, report) = security(&unhardened);
    assert!(
        !out.status.success(),
        "the unit without its hardening still scores low:\n{report}"
    );
}

/// The gateway's unit: loads as systemd would, stays as hardened as the worker's, starts
/// `edgeflow gateway`, and its ops port does not collide with a worker's on the same host.
#[test]
fn the_gateway_unit_verifies_and_stays_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let source = "deploy/systemd/edgeflow-gateway.service";
    let unit = installable_unit_from(source, dir.path(), "edgeflow-gateway.service", |u| u);
    let report = verify(&unit);
    assert!(
        report.trim().is_empty(),
        "systemd-analyze verify reports problems:\n{report}"
    );
    let (out, report) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit));
    assert!(out.status.success(), "exposure above 2.0:\n{report}");
    let text = read(source);
    assert_eq!(
        directive(&text, "ExecStart="),
        ["/usr/local/bin/edgeflow gateway"]
    );
    assert_eq!(
        directive(&text, "Environment=EDGEFLOW__OPS__LISTEN="),
        ["0.0.0.0:9465"]
    );
}

#[test]
fn the_sysusers_file_creates_a_system_user_that_cannot_log_in() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let (out, text) = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join("deploy/systemd/edgeflow.sysusers")));
    assert!(out.status.success(), "{text}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("edgeflow:"))
        .unwrap_or_else(|| panic!("no edgeflow user in\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = entry[2].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system uid: {uid}");
    assert!(
        entry[6].ends_with("nologin"),
        "the user can log in: {entry:?}"
    );
    let unit = read("deploy/systemd/edgeflow.service");
    assert!(unit.contains("\nUser=edgeflow\n") && unit.contains("\nGroup=edgeflow\n"));
}

/// Every `EDGEFLOW__` line of the example, commented out or not, is a setting `edgeflow config
/// check` accepts (unknown keys are errors), with file paths pointed at a readable file.
#[test]
fn the_environment_file_example_names_only_real_settings() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "not-a-real-key\n").unwrap();
    check_environment_example(&["deploy/systemd/edgeflow.env.example"], &secret, 10);
    // The gateway's unit layers its file over the worker's.
    check_environment_example(
        &[
            "deploy/systemd/edgeflow.env.example",
            "deploy/systemd/edgeflow-gateway.env.example",
        ],
        &secret,
        20,
    );
}

fn check_environment_example(paths: &[&str], secret: &Path, at_least: usize) {
    let path = paths.join(" + ");
    let example: String = paths.iter().map(|p| read(p) + "\n").collect();
    let vars: Vec<(String, String)> = example
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter(|l| l.starts_with("EDGEFLOW__"))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {l}"));
            let v = if v.starts_with("/etc/") {
                secret.display().to_string()
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect();
    assert!(
        vars.len() >= at_least,
        "{path} should show the common settings: {vars:?}"
    );
    let check = |extra: &[(&str, &str)]| {
        run(Command::new(env!("CARGO_BIN_EXE_edgeflow"))
            .args(["config", "check"])
            .env("EDGEFLOW_ENV", "production")
            .env("EDGEFLOW_CONFIG_DIR", repo().join("config"))
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied()))
    };
    let (out, text) = check(&[]);
    assert!(
        out.status.success(),
        "{path}'s settings are rejected:\n{text}"
    );
    let (out, text) = check(&[("EDGEFLOW__TEMPORAL__ADRESS", "https://typo:7233")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a misspelled key was accepted:\n{text}"
    );
}

fn directive<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
        .collect()
}

/// The container and the systemd unit run the same way: same settings folder, environment,
/// database in the state folder and port, and both wait longer than the drain grace period
/// before killing the worker.
#[test]
fn the_dockerfile_the_unit_and_the_settings_agree() {
    let dockerfile = read("Dockerfile");
    let unit = read("deploy/systemd/edgeflow.service");
    let settings = |file: &str| read(file).parse::<toml::Table>().unwrap();
    let (default, production) = (
        settings("config/default.toml"),
        settings("config/production.toml"),
    );

    let unit_env = directive(&unit, "Environment=");
    for var in [
        "EDGEFLOW_ENV=production",
        "EDGEFLOW_CONFIG_DIR=/etc/edgeflow/config",
        "EDGEFLOW__DATABASE__URL=sqlite:///var/lib/edgeflow/edgeflow.db?mode=rwc",
    ] {
        assert!(
            dockerfile.contains(var),
            "the Dockerfile does not set {var}"
        );
        assert!(unit_env.contains(&var), "the unit does not set {var}");
    }
    assert!(dockerfile.contains("COPY config/ /etc/edgeflow/config/"));
    assert_eq!(directive(&unit, "WorkingDirectory="), ["/etc/edgeflow"]);
    assert!(dockerfile.contains("\nWORKDIR /etc/edgeflow\n"));
    assert_eq!(
        directive(&unit, "EnvironmentFile="),
        ["-/etc/edgeflow/edgeflow.env"]
    );
    assert_eq!(directive(&unit, "StateDirectory="), ["edgeflow"]);
    assert!(dockerfile.contains("/var/lib/edgeflow/"));

    let listen = production["ops"]["listen"].as_str().unwrap();
    let port = listen.rsplit(':').next().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "production must listen beyond loopback: {listen}"
    );
    assert_eq!(directive(&dockerfile, "EXPOSE"), [port]);
    let healthcheck = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK");
    assert!(
        healthcheck.contains(&format!(
            r#""edgeflow", "health", "--url", "http://127.0.0.1:{port}/healthz""#
        )),
        "the HEALTHCHECK must probe /healthz on port {port} with the binary itself"
    );

    let grace = default["shutdown"]["grace_period_secs"]
        .as_integer()
        .unwrap();
    let stop: i64 = directive(&unit, "TimeoutStopSec=")[0]
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        stop > grace,
        "TimeoutStopSec={stop}s does not exceed the {grace} s grace period"
    );
    assert_eq!(directive(&unit, "KillSignal="), ["SIGTERM"]);
    assert_eq!(directive(&dockerfile, "STOPSIGNAL"), ["SIGTERM"]);
}

/// Builds the Dockerfile's runtime stage around the binary this test run built (~20 s; the
/// release build inside the image takes far longer: `deploy/test-image.sh --full`, or
/// EDGEFLOW_IMAGE_TEST_FULL=1 here), then runs the worker from the image with the settings of
/// edgeflow.env.example, the image's own HEALTHCHECK beside it, and a Temporal dev server that
/// starts after it: healthy at once, ready once Temporal is up, exit 0 on the stop signal, state
/// written as the non-root user. See deploy/test-image.sh for every check.
#[test]
#[ignore = "needs root and buildah: scripts/test runs it as a suite of its own (`cargo test --test it -- --ignored --exact deploy::the_container_image_runs_as_non_root_and_passes_its_healthcheck`)"]
fn the_container_image_runs_as_non_root_and_passes_its_healthcheck() {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("deploy/test-image.sh"))
        .env("EDGEFLOW_BIN", env!("CARGO_BIN_EXE_edgeflow"));
    if std::env::var_os("EDGEFLOW_IMAGE_TEST_FULL").is_some_and(|v| v == "1") {
        cmd.arg("--full");
    }
    let (out, text) = run(&mut cmd);
    eprintln!("{text}");
    assert!(out.status.success(), "deploy/test-image.sh failed:\n{text}");
    assert!(text.contains("[image] image test passed"), "{text}");
}
