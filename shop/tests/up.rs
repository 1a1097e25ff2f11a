//! `shop up` as a user runs it: both services, first-run keys and admin token, a request
//! through each, SIGTERM and Ctrl-C, a second run on the same data, `shop` without the
//! subcommand, and start-up failures.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with `args`, with no `SHOP_*` settings inherited from the environment running the
/// tests.
fn shop(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shop"));
    cmd.args(args)
        .env_remove("SHOP_DATA_DIR")
        .env_remove("SHOP_DURABILITY")
        .env_remove("SHOP_LOG_FORMAT")
        .env("RUST_LOG", "warn");
    cmd
}

/// What `shop up` printed on start, up to "Ctrl-C stops both services.".
struct Banner {
    products: String,
    orders: String,
    text: String,
}

/// Spawns `cmd` (some form of `shop up`) and reads its start-up banner.
fn start_cmd(mut cmd: Command) -> (Running, Banner) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut products, mut orders, mut text) = (None, None, String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "shop up printed no banner");
        let line = lines.next().expect("shop up exited early").unwrap();
        text.push_str(&line);
        text.push('\n');
        let url = || line.split_whitespace().nth(1).unwrap().to_owned();
        if line.trim_start().starts_with("products ") {
            products = Some(url());
        } else if line.trim_start().starts_with("orders ") {
            orders = Some(url());
        } else if line.starts_with("Ctrl-C stops") {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let banner = Banner {
        products: products.expect("a products line"),
        orders: orders.expect("an orders line"),
        text,
    };
    (running, banner)
}

const FREE_PORTS: [&str; 4] = [
    "--products-addr",
    "127.0.0.1:0",
    "--orders-addr",
    "127.0.0.1:0",
];

/// Starts `shop up` on free ports; returns the process and the two base URLs it printed.
fn start(data: &Path) -> (Running, String, String) {
    let mut cmd = shop(&["up"]);
    cmd.args(FREE_PORTS).arg("--data-dir").arg(data);
    let (running, banner) = start_cmd(cmd);
    (running, banner.products, banner.orders)
}

/// Sends `signal` (TERM, INT) and waits for the process to exit.
fn stop_with(mut running: Running, signal: &str) -> std::process::ExitStatus {
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "shop up did not stop on SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(running: Running) -> std::process::ExitStatus {
    stop_with(running, "TERM")
}

/// Runs `cmd` to completion: exit code and stderr.
fn run_to_end(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// Creates a product as the admin; returns it.
async fn create_product(http: &reqwest::Client, products: &str, admin: &str) -> serde_json::Value {
    let created = http
        .post(format!("{products}/products"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"name": "Green tea", "price": "4.20"}))
        .send()
        .await
        .unwrap();
    let status = created.status();
    let body: serde_json::Value = created.json().await.unwrap_or_default();
    assert_eq!(status, 201, "{body}");
    body
}

/// Reads a product back as the admin: its status and body.
async fn get_product(
    http: &reqwest::Client,
    products: &str,
    admin: &str,
    id: &str,
) -> (u16, serde_json::Value) {
    let got = http
        .get(format!("{products}/products/{id}"))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap();
    let status = got.status().as_u16();
    (status, got.json().await.unwrap_or_default())
}

/// First run creates keys and an admin token that work on both services through loopback HTTP;
/// SIGTERM stops cleanly; the second run reuses the keys and finds the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_both_services_and_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let (running, products, orders) = start(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let public_key = std::fs::read_to_string(dir.path().join("keys/public.key")).unwrap();
    let http = reqwest::Client::new();
    let product: serde_json::Value = http
        .post(format!("{products}/products"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"name": "Green tea", "price": "4.20"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = http
        .post(format!("{orders}/orders"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"product_id": product["id"], "quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 201);
    let order: serde_json::Value = order.json().await.unwrap();
    assert_eq!(order["total"], "12.60");
    let ready = http.get(format!("{orders}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "orders is ready and reaches products");
    assert!(stop(running).success());

    let (running, _products, orders) = start(dir.path());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys/public.key")).unwrap(),
        public_key,
        "the second run reuses the key pair"
    );
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let again: serde_json::Value = http
        .get(format!("{orders}/orders/{}", order["id"].as_str().unwrap()))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["total"], "12.60");
    assert!(stop(running).success());
}

/// `shop` without the subcommand is `shop up`, with all of its flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_shop_runs_up_with_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shop(&FREE_PORTS);
    cmd.arg("--data-dir").arg(dir.path());
    let (running, banner) = start_cmd(cmd);
    let data_line = format!("shop is up (data in {})", dir.path().display());
    assert!(banner.text.contains(&data_line), "{}", banner.text);
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    assert!(dir.path().join("keys/public.key").is_file());
    let http = reqwest::Client::new();
    let product = create_product(&http, &banner.products, &admin).await;
    assert!(dir.path().join("products").is_dir());
    assert!(dir.path().join("orders").is_dir());
    let ready = http
        .get(format!("{}/readyz", banner.orders))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(stop(running).success());

    // What the bare run wrote, `shop up` finds.
    let (running, products, _orders) = start(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let (status, again) =
        get_product(&http, &products, &admin, product["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["name"], "Green tea");
    assert!(stop(running).success());
}

/// `shop` without the subcommand reads `up`'s environment: SHOP_DATA_DIR (not ./data), and
/// SHOP_DURABILITY / SHOP_LOG_FORMAT are parsed (a bad value is refused, naming it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_shop_takes_up_settings_from_the_environment() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shop(&FREE_PORTS);
    cmd.current_dir(cwd.path())
        .env("SHOP_DATA_DIR", dir.path())
        .env("SHOP_DURABILITY", "never")
        .env("SHOP_LOG_FORMAT", "json");
    let (running, banner) = start_cmd(cmd);
    let data_line = format!("shop is up (data in {})", dir.path().display());
    assert!(banner.text.contains(&data_line), "{}", banner.text);
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    create_product(&reqwest::Client::new(), &banner.products, &admin).await;
    assert!(stop(running).success());
    assert!(dir.path().join("products").is_dir());
    assert!(
        !cwd.path().join("data").exists(),
        "SHOP_DATA_DIR was ignored: ./data was written"
    );

    let mut bad = shop(&FREE_PORTS);
    bad.current_dir(cwd.path())
        .env("SHOP_DATA_DIR", dir.path())
        .env("SHOP_DURABILITY", "sometimes");
    let (code, stderr) = run_to_end(bad);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("sometimes"), "{stderr}");
}

/// A second `shop up` on a data directory in use fails at once with exit 1, saying that
/// products could not start and why, without rewriting any file of the first (it takes the
/// locks before writing tokens); the first keeps serving with its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_on_the_same_data_fails_naming_products() {
    let dir = tempfile::tempdir().unwrap();
    let (running, products, _orders) = start(dir.path());
    let files = ["admin.token", "keys/orders-service.token"];
    let before: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap())
        .collect();
    let mut second = shop(&["up"]);
    second.args(FREE_PORTS).arg("--data-dir").arg(dir.path());
    let (code, stderr) = run_to_end(second);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("products could not start"), "{stderr}");
    assert!(stderr.contains("locked"), "{stderr}");
    let after: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap())
        .collect();
    assert_eq!(after, before, "the second run rewrote a token file");
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    create_product(&reqwest::Client::new(), &products, &admin).await;
    assert!(stop(running).success());
}

/// An orders address already in use fails the start with exit 1, naming orders and the
/// address, and leaves the data directory usable by the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_address_in_use_fails_naming_orders() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shop(&[
        "up",
        "--products-addr",
        "127.0.0.1:0",
        "--orders-addr",
        &addr,
    ]);
    cmd.arg("--data-dir").arg(dir.path());
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("orders could not start"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    let (running, products, _orders) = start(dir.path());
    let ready = reqwest::get(format!("{products}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(stop(running).success());
}

/// A signal sent the moment the banner is out still stops `shop up` gracefully (exit 0): the
/// handlers are in place before it says it is up.
#[test]
fn a_signal_right_after_the_banner_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    for signal in ["TERM", "INT", "TERM", "INT", "TERM", "INT"] {
        let (running, _products, _orders) = start(dir.path());
        let status = stop_with(running, signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status:?}");
    }
}

/// Ctrl-C (SIGINT) stops `shop up` as cleanly as SIGTERM: exit 0, and the next run on the same
/// data finds what was written before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_the_next_run_sees_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (running, products, _orders) = start(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let product = create_product(&http, &products, &admin).await;
    let status = stop_with(running, "INT");
    assert_eq!(status.code(), Some(0), "{status:?}");

    let (running, products, _orders) = start(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let (status, again) =
        get_product(&http, &products, &admin, product["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["price"], "4.20");
    assert_eq!(stop_with(running, "INT").code(), Some(0));
}

/// The start-up banner shows both API URLs and both Swagger UIs (which answer), the admin token
/// and its file, and a curl line that, pasted into a shell as printed, creates a product (2xx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_has_urls_docs_the_token_file_and_a_curl_line_that_works() {
    // A data directory whose path needs quoting in a shell.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shop's data dir");
    let mut cmd = shop(&["up"]);
    cmd.args(FREE_PORTS).arg("--data-dir").arg(&data);
    let (running, banner) = start_cmd(cmd);
    let text = &banner.text;
    let admin_file = data.join("admin.token");
    let admin = std::fs::read_to_string(&admin_file).unwrap();
    let http = reqwest::Client::new();
    for base in [&banner.products, &banner.orders] {
        assert!(base.starts_with("http://127.0.0.1:"), "{text}");
        let docs = format!("{base}/docs/");
        assert!(text.contains(&docs), "{docs} in {text}");
        let page = http.get(&docs).send().await.unwrap();
        assert_eq!(page.status(), 200, "{docs}");
    }
    assert!(
        text.contains(admin_file.to_str().unwrap()),
        "admin token path in {text}"
    );
    assert!(
        text.lines().any(|l| l.trim() == admin.trim()),
        "admin token in {text}"
    );

    // The curl command: its first line and the lines it continues with a trailing backslash.
    let mut curl = String::new();
    for line in text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("curl "))
    {
        curl.push_str(line);
        curl.push('\n');
        if !line.ends_with('\\') {
            break;
        }
    }
    assert!(!curl.is_empty(), "a curl line in {text}");
    assert!(
        curl.contains(&format!("{}/products", banner.products)),
        "{curl}"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} -o /dev/null -w '%{{http_code}}'",
            curl.trim_end()
        ))
        .output()
        .expect("sh and curl");
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && code.starts_with('2'),
        "{curl} answered {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stop(running).success());
}
