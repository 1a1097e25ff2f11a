//! The workspace's real binaries as child processes: where they are built, a free loopback
//! port, and [`Service`], one service binary on its own port and data directory, killed when
//! dropped.
//!
//! - The binaries are found next to the test executable (`TARGET/PROFILE/deps/TEST-…` →
//!   `TARGET/PROFILE/{products,orders,shop}`). Cargo does not build other packages' binaries
//!   for a test, so run `cargo build --workspace --bins` first (same profile, same
//!   `CARGO_TARGET_DIR`); a missing binary fails with a message that says so.
//! - Readiness is polled (`GET /healthz`) with a deadline, never assumed after a fixed sleep.
//! - Children get a clean environment for their settings: every `SHOP_*` variable of the test
//!   process is removed, so only the flags given here configure them.
//! - Output goes to a log file; when a test panics, the tail of every log is printed.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a service may take from spawn to answering `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// The path of a workspace binary (`products`, `orders`, `shop`) built next to this test.
///
/// # Panics
/// If it is missing, with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // TARGET/PROFILE/deps/e2e-HASH → TARGET/PROFILE
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in TARGET/PROFILE/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (same profile and CARGO_TARGET_DIR) \
         before `cargo test -p integration-tests`; integration tests cannot build other \
         packages' binaries",
        path.display()
    );
    path
}

/// A command for a workspace binary, with no `SHOP_*` variables inherited from the test.
pub fn command(name: &str) -> Command {
    let mut cmd = Command::new(binary(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHOP_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A loopback port that was free a moment ago (bound to `127.0.0.1:0`, then released), never
/// the same twice in this process so that parallel tests do not race for one port.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0")
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// One service binary running as a child process on a fixed loopback port.
///
/// Dropping it kills the process (SIGKILL) and waits for it; if the thread is panicking, the
/// tail of its log is printed first.
pub struct Service {
    name: String,
    program: String,
    args: Vec<String>,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Why a child did not become healthy.
enum StartFailure {
    /// It exited; the flag tells whether it said it could not listen (a lost port race).
    Exited(ExitStatus, bool),
}

impl Service {
    /// Starts `program` (a workspace binary) as `name` with `--listen 127.0.0.1:PORT` on a free
    /// port, `--data-dir dir/NAME-data`, logs to `dir/NAME.log`, plus `args`; returns once it
    /// answers `/healthz`. If another process took the port meanwhile, retries on a new one.
    ///
    /// # Panics
    /// If it exits or is not healthy within [`START_TIMEOUT`].
    pub async fn start(name: &str, program: &str, dir: &Path, args: Vec<String>) -> Self {
        let mut service = Self {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            port: free_port(),
            data_dir: dir.join(format!("{name}-data")),
            log: dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
        };
        for _ in 0..3 {
            service.spawn();
            match service.wait_healthy().await {
                Ok(()) => return service,
                Err(StartFailure::Exited(_, true)) => service.port = free_port(),
                Err(StartFailure::Exited(status, false)) => {
                    panic!("{} exited at start with {status}", service.name)
                }
            }
        }
        panic!("{} could not get a free port in 3 attempts", service.name)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the log file");
        writeln!(
            log,
            "===== start #{} of {} on port {} =====",
            self.starts, self.name, self.port
        )
        .expect("writing the log file");
        let stderr = log.try_clone().expect("cloning the log file handle");
        let child = command(&self.program)
            .args(&self.args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.name));
        self.child = Some(child);
    }

    /// Polls `/healthz` until it answers 200; fails early if the child exits.
    async fn wait_healthy(&mut self) -> Result<(), StartFailure> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        let url = self.url("/healthz");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().expect("polling the child") {
                self.child = None;
                let lost_port = self.log_tail(5).contains("cannot listen");
                if !lost_port {
                    eprintln!("{}", self.log_tail(LOG_TAIL_LINES));
                }
                return Err(StartFailure::Exited(status, lost_port));
            }
            if let Ok(res) = client.get(&url).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer /healthz within {START_TIMEOUT:?}\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Its name (`products`, `orders`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `path` (starting with `/`) on it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Its data directory (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Kills it with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (with the `kill` command) and waits for the exit.
    ///
    /// # Panics
    /// If it is not running, or still runs after `within` (it is then killed on drop).
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("polling the child") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs {within:?} after SIGTERM\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts it again with the same flags, port and data directory (after [`Self::kill`] or
    /// [`Self::terminate`]) and waits until it answers `/healthz`.
    ///
    /// # Panics
    /// If it is still running, exits, or is not healthy within [`START_TIMEOUT`].
    pub async fn restart(&mut self) {
        self.spawn();
        if let Err(StartFailure::Exited(status, _)) = self.wait_healthy().await {
            panic!(
                "{} exited at restart with {status}\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "----- last {lines} lines of {} -----\n{tail}",
            self.log.display()
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(LOG_TAIL_LINES));
        }
        self.kill();
    }
}
