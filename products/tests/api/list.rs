//! `GET /products`: pages, cursors, sorting and filters.

use serde_json::Value;

use crate::helpers::{TestApp, id_of, redactions, spawn_app};

/// Creates products one after another (so creation order is known); returns their ids.
async fn seed(app: &TestApp, products: &[(&str, &str)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, price) in products {
        ids.push(id_of(&app.create_ok(name, price).await));
    }
    ids
}

/// `n` products named `p01`.. priced 1.00, 2.00, ...
async fn seed_numbered(app: &TestApp, n: usize) -> Vec<String> {
    let products: Vec<(String, String)> = (1..=n)
        .map(|i| (format!("p{i:02}"), format!("{i}.00")))
        .collect();
    let refs: Vec<(&str, &str)> = products
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_str()))
        .collect();
    seed(app, &refs).await
}

/// Follows a list from `first` page to page, by `next_cursor` (re-adding it to `first`) or by
/// the `next` link; returns every page.
async fn pages(app: &TestApp, first: &str, by_link: bool) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let page = app.get_json(&path).await;
        let cursor = page["next_cursor"].as_str().map(str::to_owned);
        let link = page["next"].as_str().map(str::to_owned);
        assert_eq!(cursor.is_some(), link.is_some(), "{page}");
        pages.push(page);
        assert!(pages.len() < 100, "the list does not end");
        match (cursor, link) {
            (Some(_), Some(link)) if by_link => path = link,
            (Some(cursor), _) => path = format!("{first}&cursor={cursor}"),
            _ => return pages,
        }
    }
}

fn ids(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter().map(id_of))
        .collect()
}

fn field(pages: &[Value], name: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|i| i[name].as_str().unwrap().to_owned())
        .collect()
}

fn sizes(pages: &[Value]) -> Vec<usize> {
    pages
        .iter()
        .map(|p| p["items"].as_array().unwrap().len())
        .collect()
}

/// 25 products in pages of 10, by cursor or by `next` link: 10, 10, 5, each product once, in
/// creation order; the last page has no cursor.
#[actix_web::test]
async fn pages_cover_everything_once_in_order() {
    // Arrange
    let app = spawn_app().await;
    let created = seed_numbered(&app, 25).await;

    // Act
    let by_cursor = pages(&app, "/products?limit=10", false).await;
    let by_link = pages(&app, "/products?limit=10", true).await;

    // Assert
    assert_eq!(sizes(&by_cursor), [10, 10, 5]);
    assert_eq!(ids(&by_cursor), created);
    assert_eq!(ids(&by_link), created);
    assert!(by_link[2].get("next_cursor").is_none());
    assert!(
        by_cursor[0]["next"]
            .as_str()
            .unwrap()
            .starts_with("/products?")
    );
    let page = app.get_json("/products?limit=2").await;
    assert!(page["next_cursor"].is_string() && page["next"].is_string());
    redactions().bind(|| insta::assert_json_snapshot!("list_page", page));
    app.stop().await;
}

/// Without `limit` a page holds 20 products.
#[actix_web::test]
async fn default_limit_is_20() {
    // Arrange
    let app = spawn_app().await;
    seed_numbered(&app, 21).await;

    // Act
    let page = app.get_json("/products").await;

    // Assert
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    assert!(page["next_cursor"].is_string());
    app.stop().await;
}

/// An empty store lists an empty page with no cursor.
#[actix_web::test]
async fn empty_list() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let page = app.get_json("/products").await;

    // Assert
    assert_eq!(page, serde_json::json!({"items": []}));
    app.stop().await;
}

const FRUIT: [(&str, &str); 6] = [
    ("banana", "0.50"),
    ("Cherry", "12.00"),
    ("apple", "3.00"),
    ("Apricot", "2.00"),
    ("blueberry", "100.00"),
    ("Pineapple", "7.25"),
];

/// Sorting by name is case-insensitive, ascending and descending, across pages.
#[actix_web::test]
async fn sort_by_name() {
    // Arrange
    let app = spawn_app().await;
    seed(&app, &FRUIT).await;

    // Act
    let asc = pages(&app, "/products?sort=name&limit=4", true).await;
    let desc = pages(&app, "/products?sort=name&order=desc&limit=4", false).await;

    // Assert
    let expected = [
        "apple",
        "Apricot",
        "banana",
        "blueberry",
        "Cherry",
        "Pineapple",
    ];
    assert_eq!(field(&asc, "name"), expected);
    let mut reversed = expected;
    reversed.reverse();
    assert_eq!(field(&desc, "name"), reversed);
    assert_eq!(sizes(&asc), [4, 2]);
    app.stop().await;
}

/// Sorting by price is numeric (not by text), ascending and descending, across pages.
#[actix_web::test]
async fn sort_by_price() {
    // Arrange
    let app = spawn_app().await;
    seed(&app, &FRUIT).await;

    // Act
    let asc = pages(&app, "/products?sort=price&limit=4", false).await;
    let desc = pages(&app, "/products?sort=price&order=desc&limit=4", true).await;

    // Assert
    let expected = ["0.50", "2.00", "3.00", "7.25", "12.00", "100.00"];
    assert_eq!(field(&asc, "price"), expected);
    let mut reversed = expected;
    reversed.reverse();
    assert_eq!(field(&desc, "price"), reversed);
    app.stop().await;
}

/// Sorting by creation time, explicitly ascending and descending.
#[actix_web::test]
async fn sort_by_created_at() {
    // Arrange
    let app = spawn_app().await;
    let created = seed(&app, &FRUIT).await;

    // Act
    let asc = pages(&app, "/products?sort=created_at&order=asc&limit=4", true).await;
    let desc = pages(&app, "/products?sort=created_at&order=desc&limit=4", false).await;

    // Assert
    assert_eq!(ids(&asc), created);
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);
    app.stop().await;
}

/// `name_contains` matches case-insensitively (both sides folded) anywhere in the name.
#[actix_web::test]
async fn filter_by_name() {
    // Arrange
    let app = spawn_app().await;
    seed(&app, &FRUIT).await;

    // Act
    let found = pages(&app, "/products?name_contains=aP&sort=name&limit=1", true).await;

    // Assert
    assert_eq!(field(&found, "name"), ["apple", "Apricot", "Pineapple"]);
    app.stop().await;
}

/// `min_price` and `max_price` are inclusive and combine with paging.
#[actix_web::test]
async fn filter_by_price_range_with_paging() {
    // Arrange
    let app = spawn_app().await;
    let created = seed_numbered(&app, 25).await;

    // Act
    let by_cursor = pages(&app, "/products?min_price=5&max_price=15.00&limit=4", false).await;
    let by_link = pages(&app, "/products?min_price=5&max_price=15.00&limit=4", true).await;

    // Assert
    assert_eq!(sizes(&by_cursor), [4, 4, 3]);
    assert_eq!(ids(&by_cursor), created[4..15]);
    assert_eq!(ids(&by_link), created[4..15]);
    assert_eq!(field(&by_cursor, "price").first().unwrap(), "5.00");
    assert_eq!(field(&by_cursor, "price").last().unwrap(), "15.00");
    app.stop().await;
}

/// Filters and sorts combine: names with "p" priced at most 7.25, by price descending.
#[actix_web::test]
async fn filters_and_sort_combine() {
    // Arrange
    let app = spawn_app().await;
    seed(&app, &FRUIT).await;

    // Act
    let found = pages(
        &app,
        "/products?name_contains=p&max_price=7.25&sort=price&order=desc&limit=2",
        true,
    )
    .await;

    // Assert
    assert_eq!(field(&found, "name"), ["Pineapple", "apple", "Apricot"]);
    app.stop().await;
}

/// Archived products are left out of lists, filtered or not.
#[actix_web::test]
async fn archived_products_are_left_out() {
    // Arrange
    let app = spawn_app().await;
    let created = seed_numbered(&app, 5).await;
    for id in [&created[1], &created[3]] {
        assert_eq!(app.delete(id, None).await.status(), 204);
    }

    // Act
    let all = pages(&app, "/products?limit=2", true).await;
    let cheap = pages(&app, "/products?max_price=2&sort=price", true).await;

    // Assert
    assert_eq!(
        ids(&all),
        [created[0].clone(), created[2].clone(), created[4].clone()]
    );
    assert_eq!(ids(&cheap), [created[0].clone()]);
    app.stop().await;
}

/// Equal sort keys (same price, same name but for case) neither repeat nor skip products
/// across pages.
#[actix_web::test]
async fn ties_are_paged_exactly_once() {
    // Arrange
    let app = spawn_app().await;
    let created = seed(
        &app,
        &[
            ("tea", "2.00"),
            ("Tea", "1.00"),
            ("TEA", "2.00"),
            ("tea", "1.00"),
            ("Tea", "2.00"),
            ("tEa", "2.00"),
            ("teA", "1.00"),
        ],
    )
    .await;
    let mut expected = created.clone();
    expected.sort();

    for first in [
        "/products?sort=price&limit=2",
        "/products?sort=price&order=desc&limit=2",
        "/products?sort=name&limit=3",
        "/products?sort=name&order=desc&limit=1",
    ] {
        // Act
        let seen = pages(&app, first, true).await;

        // Assert
        let mut ids = ids(&seen);
        ids.sort();
        assert_eq!(ids, expected, "{first}");
    }
    app.stop().await;
}

/// A cursor stays valid when the product it points after is archived or re-priced meanwhile.
#[actix_web::test]
async fn cursor_survives_changes_to_the_last_seen_product() {
    // Arrange
    let app = spawn_app().await;
    let created = seed_numbered(&app, 6).await;
    let page = app.get_json("/products?sort=price&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let other = app.get_json("/products?limit=3").await;
    let other_cursor = other["next_cursor"].as_str().unwrap().to_owned();

    // Act
    assert_eq!(app.delete(&created[1], None).await.status(), 204);
    let patched = app
        .patch(&created[2], &serde_json::json!({"price": "0.50"}), None)
        .await;
    assert_eq!(patched.status(), 200);
    let rest = pages(
        &app,
        &format!("/products?sort=price&limit=2&cursor={cursor}"),
        true,
    )
    .await;
    let rest_by_time = app
        .get_json(&format!("/products?limit=3&cursor={other_cursor}"))
        .await;

    // Assert
    assert_eq!(ids(&rest), created[3..]);
    assert_eq!(ids(&[rest_by_time]), created[3..]);
    app.stop().await;
}

/// Filter values with reserved characters survive the `next` link.
#[actix_web::test]
async fn next_link_keeps_filters_with_reserved_characters() {
    // Arrange
    let app = spawn_app().await;
    let created = seed(
        &app,
        &[
            ("Tom & Jerry+1 é", "1.00"),
            ("Tom & Jerry+2 é", "2.00"),
            ("Tom and Jerry", "3.00"),
            ("Tom & Jerry+3 é", "4.00"),
        ],
    )
    .await;

    // Act
    let seen = pages(
        &app,
        "/products?name_contains=%26%20jerry%2B&min_price=1.00&limit=1",
        true,
    )
    .await;

    // Assert
    assert_eq!(
        ids(&seen),
        [created[0].clone(), created[1].clone(), created[3].clone()]
    );
    app.stop().await;
}
