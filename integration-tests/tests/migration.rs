//! Migrating the original Python implementation's TinyDB files with `shop import`: every
//! record is checked with the service's own rules, refused ones are named with their position
//! and reason, nothing is written unless all pass (or `--skip-invalid`), and the services then
//! start on what was imported and serve it.

use std::path::Path;
use std::process::Output;

use integration_tests::Shop;
use serde_json::json;
use test_kit::process::command;

const TEA: &str = "8b0f1a52-2c61-4e0b-9d43-3f7f5f1d2a01";
const OOLONG: &str = "8b0f1a52-2c61-4e0b-9d43-3f7f5f1d2a02";
const MATE: &str = "8b0f1a52-2c61-4e0b-9d43-3f7f5f1d2a03";
const ORDER: &str = "5c2d9e10-7a3b-4c8d-8e9f-0a1b2c3d4e01";
const ORDER_OF_OOLONG: &str = "5c2d9e10-7a3b-4c8d-8e9f-0a1b2c3d4e02";

fn shop_import(args: &[&str], data: &Path) -> Output {
    command("shop")
        .arg("import")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("running shop import")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tinydb_migration_imports_only_what_the_services_accept() {
    let dir = Shop::new_dir();
    let data = dir.path().join("data");
    let products = dir.path().join("products.tinydb.json");
    let tinydb = json!({"_default": {
        "1": {"uuid": TEA, "name": "Green tea", "price": 4.2},
        "2": {"uuid": OOLONG, "name": "Oolong", "price": "12.345"},
        "3": {"uuid": MATE, "name": "Mate"}
    }});
    std::fs::write(&products, tinydb.to_string()).unwrap();
    let orders = dir.path().join("orders.tinydb.json");
    let tinydb = json!({"_default": {
        "1": {"uuid": ORDER, "product_uuid": TEA, "quantity": 2},
        "2": {"uuid": ORDER_OF_OOLONG, "product_uuid": OOLONG, "quantity": 1}
    }});
    std::fs::write(&orders, tinydb.to_string()).unwrap();
    let file = |p: &Path| p.display().to_string();

    // Refused records are each named; nothing is written.
    let out = shop_import(&["products", &file(&products)], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("document 2: price: must have at most two fraction digits")
            && err.contains("document 3: price: is required")
            && err.contains("2 of 3 records refused; nothing was imported"),
        "{err}"
    );
    assert!(!data.join("products").join("products.json").exists());

    // --skip-invalid imports the rest and says what it skipped.
    let out = shop_import(&["products", &file(&products), "--skip-invalid"], &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("imported 1 records (0 archived, 2 skipped)") && said.contains("document 2"),
        "{said}"
    );
    // An order of a product that was not imported is refused like one of an unknown product.
    let out = shop_import(&["orders", &file(&orders), "--owner", "alice"], &data);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("product {OOLONG} is not in the products store")),
        "{}",
        text(&out.stderr)
    );
    let out = shop_import(
        &[
            "orders",
            &file(&orders),
            "--owner",
            "alice",
            "--skip-invalid",
        ],
        &data,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // The services start on the imported files and serve them.
    for service in ["products", "orders"] {
        std::fs::rename(
            data.join(service),
            dir.path().join(format!("{service}-data")),
        )
        .unwrap();
    }
    let shop = Shop::start_in(dir, &[]).await;
    let tea = shop
        .api
        .get(
            &shop.products.url(&format!("/products/{TEA}")),
            Some(&shop.tokens.catalog),
        )
        .await;
    let tea = tea.expect(200, "GET the imported product");
    assert_eq!(
        (tea["name"].clone(), tea["price"].clone()),
        (json!("Green tea"), json!("4.20"))
    );
    let oolong = shop
        .api
        .get(
            &shop.products.url(&format!("/products/{OOLONG}")),
            Some(&shop.tokens.catalog),
        )
        .await;
    oolong.expect(404, "the refused product was not imported");
    let order = shop
        .api
        .get(
            &shop.orders.url(&format!("/orders/{ORDER}")),
            Some(&shop.tokens.alice),
        )
        .await;
    let order = order.expect(200, "alice reads the imported order");
    assert_eq!(order["total"], "8.40");
    assert_eq!(order["items"][0]["product_name"], "Green tea");
    assert!(
        order.get("stock").is_none(),
        "imported orders take no stock: {order}"
    );
}
