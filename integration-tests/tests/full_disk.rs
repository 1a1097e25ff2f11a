//! A real full disk: products keeps its data on a small `tmpfs` that the test fills up and
//! frees again, through the real binary.
//!
//! - Filled while running: writes get 503 with a short `Retry-After`, reads go on, `/readyz`
//!   says not ready while `/healthz` stays up (no restart wanted), and writes resume by
//!   themselves within seconds of space coming back. After a restart, every acknowledged
//!   product is there and none of those refused (no phantom writes).
//! - Full at start, with a torn last journal line to drop: the service starts read-only
//!   instead of exiting, then drops the line (keeping its bytes) and takes writes once it can.
//!
//! Mounting needs root (CI runs as root); elsewhere the tests print why they skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{Api, Keys, Service};
use serde_json::{Value, json};

/// The tmpfs's size: room for the service's files, small enough to fill in an instant.
const DISK_BYTES: u64 = 2 << 20;

/// A tmpfs mounted at a path, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs at `path` (created), or says why it cannot.
    fn mount(path: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK_BYTES}")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (not root, or no mount rights here): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Fills the disk with a file until the kernel refuses another page; returns its path.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("create the filler");
        for chunk in [64 << 10, 4 << 10, 512, 1] {
            let bytes = vec![0u8; chunk];
            while f.write_all(&bytes).is_ok() {}
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// One test's products service, whose data directory is a small tmpfs, with a catalogue token.
struct OnSmallDisk {
    products: Service,
    disk: SmallDisk,
    token: String,
    api: Api,
    _dir: tempfile::TempDir,
}

/// Starts products on a small tmpfs and creates `n` products; `None` (with the reason printed)
/// where no tmpfs can be mounted.
async fn on_small_disk(test: &str, n: usize) -> Option<OnSmallDisk> {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate(&dir.path().join("keys"));
    let token = keys.mint("catalog", &["products:read", "products:write"], false);
    // `Service` keeps its data in `dir/products-data` and its log next to it, off the tmpfs.
    let disk = match SmallDisk::mount(&dir.path().join("products-data")) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
    };
    let args = [
        "--public-key-file",
        &keys.public_key.to_string_lossy(),
        "--durability",
        "always",
    ]
    .map(str::to_owned)
    .to_vec();
    let products = Service::start("products", "products", dir.path(), args).await;
    let api = Api::new();
    for i in 0..n {
        api.post(&products.url("/products"), Some(&token), &product(i))
            .await
            .expect(201, "before the disk fills");
    }
    Some(OnSmallDisk {
        products,
        disk,
        token,
        api,
        _dir: dir,
    })
}

fn product(n: usize) -> Value {
    json!({"name": format!("Tea {n}"), "price": "4.20"})
}

async fn count(api: &Api, products: &Service, token: &str) -> usize {
    let list = api
        .get(&products.url("/products?limit=100"), Some(token))
        .await;
    list.expect(200, "GET /products")["items"]
        .as_array()
        .unwrap()
        .len()
}

/// Creates products until one is refused (the disk is full); returns how many were created
/// and the refusal.
async fn create_until_refused(
    api: &Api,
    products: &Service,
    token: &str,
) -> (usize, integration_tests::Reply) {
    for n in 0..500 {
        let reply = api
            .post(&products.url("/products"), Some(token), &product(n))
            .await;
        if reply.status != 201 {
            return (n, reply);
        }
    }
    panic!("500 products fitted on a full disk");
}

/// Posts until one is created, within `within`; returns how long that took.
async fn create_once_writable(
    api: &Api,
    products: &Service,
    token: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let reply = api
            .post(&products.url("/products"), Some(token), &product(999))
            .await;
        if reply.status == 201 {
            return started.elapsed();
        }
        assert_eq!(reply.status, 503, "{:?}", reply.body);
        assert!(started.elapsed() < within, "writes never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_disk_that_fills_up_and_frees_again() {
    let Some(OnSmallDisk {
        mut products,
        disk,
        token,
        api,
        _dir,
    }) = on_small_disk("a_disk_that_fills_up_and_frees_again", 5).await
    else {
        return;
    };

    let filler = disk.fill();
    let (created, refused) = create_until_refused(&api, &products, &token).await;
    let acked = 5 + created;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(
        refused.body["type"], "urn:shop:problem:unavailable",
        "{:?}",
        refused.body
    );
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("full"),
        "{:?}",
        refused.body
    );
    // More refusals while it stays full; reads go on.
    for n in 0..20 {
        let reply = api
            .post(&products.url("/products"), Some(&token), &product(100 + n))
            .await;
        assert_eq!(reply.status, 503, "{:?}", reply.body);
    }
    assert_eq!(count(&api, &products, &token).await, acked);
    assert_eq!(api.get(&products.url("/readyz"), None).await.status, 503);
    assert_eq!(api.get(&products.url("/healthz"), None).await.status, 200);

    std::fs::remove_file(&filler).unwrap();
    let took = create_once_writable(&api, &products, &token, Duration::from_secs(10)).await;
    eprintln!("writes resumed {took:?} after space came back");
    assert_eq!(api.get(&products.url("/readyz"), None).await.status, 200);
    assert_eq!(count(&api, &products, &token).await, acked + 1);

    // Nothing refused comes back with a restart: the failed lines were cut off the journal.
    products.terminate(Duration::from_secs(10)).await;
    products.restart().await;
    assert_eq!(count(&api, &products, &token).await, acked + 1);
    products.terminate(Duration::from_secs(10)).await;
    drop(disk);
}

#[tokio::test]
async fn a_service_starts_read_only_on_a_full_disk() {
    let Some(OnSmallDisk {
        mut products,
        disk,
        token,
        api,
        _dir,
    }) = on_small_disk("a_service_starts_read_only_on_a_full_disk", 3).await
    else {
        return;
    };
    products.terminate(Duration::from_secs(10)).await;
    // The process died in the middle of a write (a torn last line), and the disk is full.
    let journal = disk.path.join("products.journal");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    f.write_all(br#"{"seq":4,"crc":1,"event":{"kind":"crea"#)
        .unwrap();
    drop(f);
    let filler = disk.fill();

    products.restart().await;
    assert_eq!(count(&api, &products, &token).await, 3);
    let ready = api.get(&products.url("/readyz"), None).await;
    assert_eq!(ready.status, 503);
    let reason = ready.body["checks"]["store"].as_str().unwrap_or_default();
    assert!(reason.contains("opened read-only"), "{:?}", ready.body);
    let refused = api
        .post(&products.url("/products"), Some(&token), &product(7))
        .await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);

    std::fs::remove_file(&filler).unwrap();
    create_once_writable(&api, &products, &token, Duration::from_secs(10)).await;
    assert_eq!(count(&api, &products, &token).await, 4);
    let evidence = std::fs::read(disk.path.join("products.journal.broken.1")).unwrap();
    assert!(evidence.starts_with(br#"{"seq":4"#), "{evidence:?}");
    products.terminate(Duration::from_secs(10)).await;
    drop(disk);
}
