//! `/products`: create, read, update, archive and batch lookup, one behaviour per test.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_problem, error_fields, fresh_dir, id_of, redactions, scrub, spawn_app,
    spawn_with,
};

/// Creates one product and returns its id.
async fn one(app: &TestApp, name: &str, price: &str) -> String {
    id_of(&app.create_ok(name, price).await)
}

// ---------------------------------------------------------------- create

/// A create answers 201 with Location, ETag "1" and the stored fields (name trimmed, price
/// normalised to two fraction digits).
#[actix_web::test]
async fn create_returns_the_new_product() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app
        .create(&json!({"name": "Green tea", "price": "4.2"}))
        .await;

    // Assert
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    let id = id_of(&body);
    assert_eq!(location, format!("/products/{id}"));
    assert!(id.parse::<Uuid>().is_ok(), "{id}");
    assert_eq!(body["name"], "Green tea");
    assert_eq!(body["price"], "4.20");
    assert_eq!(body["version"], 1);
    assert_eq!(body["created_at"], body["updated_at"]);
    assert!(body.get("archived").is_none(), "{body}");
    redactions().bind(|| insta::assert_json_snapshot!("created_product", body));
    app.stop().await;
}

/// The product a create returns is the one stored: reading its Location gives the same body.
#[actix_web::test]
async fn created_product_is_readable_at_its_location() {
    // Arrange
    let app = spawn_app().await;
    let res = app.create(&json!({"name": "Oolong", "price": "7"})).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();

    // Act
    let read = app.get_json(&location).await;

    // Assert
    assert_eq!(read, created);
    assert_eq!(read["price"], "7.00");
    app.stop().await;
}

/// A price is a decimal string: a JSON number is refused with 422 naming `price` (a client
/// holding it as a float could not say exact cents), and nothing is created.
#[actix_web::test]
async fn create_refuses_a_json_number_price() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let decimal = app.create(&json!({"name": "Chai", "price": 4.2})).await;
    let whole = app.create(&json!({"name": "Mate", "price": 5})).await;

    // Assert
    for res in [decimal, whole] {
        let problem = assert_problem(res, 422, "validation").await;
        assert_eq!(error_fields(&problem), ["price"]);
    }
    let list = app.get_json("/products").await;
    assert_eq!(list["items"], json!([]));
    app.stop().await;
}

/// A whole number may be written with a zero fraction (`10.0`), as JSON Schema counts
/// integers; a fraction is refused.
#[actix_web::test]
async fn whole_numbers_may_have_a_zero_fraction() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let whole = app
        .create(&json!({"name": "Pot", "price": "25.00", "stock": 10.0}))
        .await;
    let fraction = app
        .create(&json!({"name": "Pot", "price": "25.00", "stock": 10.5}))
        .await;

    // Assert
    assert_eq!(whole.status(), 201);
    assert_eq!(whole.json::<Value>().await.unwrap()["stock"], 10);
    let problem = assert_problem(fraction, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["stock"]);
    app.stop().await;
}

/// A name with white space at either end is refused, not trimmed: what is stored is what was
/// sent, as the OpenAPI pattern says.
#[actix_web::test]
async fn create_refuses_a_padded_name() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app
        .create(&json!({"name": "  Green tea\t", "price": "4.20"}))
        .await;

    // Assert
    let body = assert_problem(res, 422, "validation").await;
    assert_eq!(error_fields(&body), ["name"]);
    assert_eq!(
        body["errors"][0]["message"],
        "must not contain control characters"
    );
    let res = app
        .create(&json!({"name": " Green tea", "price": "4.20"}))
        .await;
    let body = assert_problem(res, 422, "validation").await;
    assert_eq!(
        body["errors"][0]["message"],
        "must not start or end with white space"
    );
    app.stop().await;
}

/// The bounds are inclusive: a 200-character name and a zero price are accepted.
#[actix_web::test]
async fn create_accepts_the_boundaries() {
    // Arrange
    let app = spawn_app().await;
    let long = "é".repeat(200);

    // Act
    let res = app.create(&json!({"name": long, "price": "0"})).await;

    // Assert
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], long);
    assert_eq!(body["price"], "0.00");
    app.stop().await;
}

// ---------------------------------------------------------------- get

/// A read answers 200 with the product and its ETag.
#[actix_web::test]
async fn get_returns_the_product_with_its_etag() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Sencha", "3.10").await;

    // Act
    let res = app.get(&format!("/products/{id}")).await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["name"], "Sencha");
    assert_eq!(body["price"], "3.10");
    redactions().bind(|| insta::assert_json_snapshot!("product", body));
    app.stop().await;
}

/// If-None-Match with the current ETag answers 304 with no body; an older one gets the product.
#[actix_web::test]
async fn get_with_matching_if_none_match_is_not_modified() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Sencha", "3.10").await;
    let path = format!("/products/{id}");

    // Act
    let same = app
        .request(Method::GET, &path, Some(&app.reader))
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.patch(&id, &json!({"price": "3.20"}), None)
            .await
            .status(),
        200
    );
    let older = app
        .request(Method::GET, &path, Some(&app.reader))
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(same.status(), 304);
    assert_eq!(same.headers()["etag"], "\"1\"");
    assert!(same.bytes().await.unwrap().is_empty());
    assert_eq!(older.status(), 200);
    assert_eq!(older.headers()["etag"], "\"2\"");
    assert_eq!(older.json::<Value>().await.unwrap()["price"], "3.20");
    app.stop().await;
}

/// `*` and a weak ETag in a list also match in If-None-Match; If-Match `*` matches any version.
#[actix_web::test]
async fn wildcard_and_weak_etags_match() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Sencha", "3.10").await;
    let path = format!("/products/{id}");
    let conditional_get = |tags: &'static str| {
        app.request(Method::GET, &path, Some(&app.reader))
            .header("If-None-Match", tags)
            .send()
    };

    // Act
    let star = conditional_get("*").await.unwrap();
    let weak = conditional_get("\"7\", W/\"1\"").await.unwrap();
    let any = app.patch(&id, &json!({"price": "3.30"}), Some("*")).await;

    // Assert
    assert_eq!(star.status(), 304);
    assert_eq!(weak.status(), 304);
    assert_eq!(any.status(), 200);
    assert_eq!(any.headers()["etag"], "\"2\"");
    app.stop().await;
}

/// An unknown (but valid) id answers 404 not-found naming the id.
#[actix_web::test]
async fn get_unknown_id_is_not_found() {
    // Arrange
    let app = spawn_app().await;
    let id = Uuid::new_v4().to_string();

    // Act
    let res = app.get(&format!("/products/{id}")).await;

    // Assert
    let problem = assert_problem(res, 404, "not-found").await;
    assert!(problem["detail"].as_str().unwrap().contains(&id));
    insta::assert_json_snapshot!("problem_not_found", scrub(&problem, &[(&id, "[id]")]));
    app.stop().await;
}

/// A path id that is not a UUID answers 400 bad-request.
#[actix_web::test]
async fn get_malformed_id_is_bad_request() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app.get("/products/not-a-uuid").await;

    // Assert
    let problem = assert_problem(res, 400, "bad-request").await;
    assert!(problem["detail"].as_str().unwrap().contains("not-a-uuid"));
    app.stop().await;
}

/// An archived product answers 410 gone.
#[actix_web::test]
async fn get_archived_is_gone() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Rooibos", "2.00").await;
    assert_eq!(app.delete(&id, None).await.status(), 204);

    // Act
    let res = app.get(&format!("/products/{id}")).await;

    // Assert
    let problem = assert_problem(res, 410, "gone").await;
    insta::assert_json_snapshot!("problem_gone", scrub(&problem, &[(&id, "[id]")]));
    app.stop().await;
}

// ---------------------------------------------------------------- patch

/// Patching only the name changes the name, keeps the price and bumps the version.
#[actix_web::test]
async fn patch_name_only() {
    // Arrange
    let app = spawn_app().await;
    let created = app.create_ok("Tea", "1.50").await;
    let id = id_of(&created);

    // Act
    let res = app.patch(&id, &json!({"name": "Black tea"}), None).await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Black tea");
    assert_eq!(body["price"], "1.50");
    assert_eq!(body["version"], 2);
    assert_eq!(body["created_at"], created["created_at"]);
    assert_ne!(body["updated_at"], created["updated_at"]);
    assert!(body.get("archived").is_none(), "{body}");
    redactions().bind(|| insta::assert_json_snapshot!("patched_product", body));
    assert_eq!(app.get_json(&format!("/products/{id}")).await, body);
    app.stop().await;
}

/// Patching only the price changes the price (exactly) and keeps the name.
#[actix_web::test]
async fn patch_price_only() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;

    // Act
    let res = app.patch(&id, &json!({"price": "2.5"}), None).await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Tea");
    assert_eq!(body["price"], "2.50");
    assert_eq!(body["version"], 2);
    app.stop().await;
}

/// Patching both fields changes both in one version.
#[actix_web::test]
async fn patch_both_fields() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;

    // Act
    let res = app
        .patch(&id, &json!({"name": "Green tea", "price": "3"}), None)
        .await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (&body["name"], &body["price"], &body["version"]),
        (&json!("Green tea"), &json!("3.00"), &json!(2))
    );
    app.stop().await;
}

/// If-Match with the current ETag applies the change and answers ETag "2".
#[actix_web::test]
async fn patch_with_matching_if_match() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;

    // Act
    let res = app
        .patch(&id, &json!({"price": "1.60"}), Some("\"1\""))
        .await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    assert_eq!(res.json::<Value>().await.unwrap()["price"], "1.60");
    app.stop().await;
}

/// If-Match with an older ETag answers 412 and changes nothing.
#[actix_web::test]
async fn patch_with_stale_if_match_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    assert_eq!(
        app.patch(&id, &json!({"price": "1.60"}), None)
            .await
            .status(),
        200
    );
    let before = app.get_json(&format!("/products/{id}")).await;

    // Act
    let res = app
        .patch(
            &id,
            &json!({"name": "Lost update", "price": "9.99"}),
            Some("\"1\""),
        )
        .await;

    // Assert
    let problem = assert_problem(res, 412, "precondition-failed").await;
    insta::assert_json_snapshot!("problem_precondition_failed", problem);
    assert_eq!(app.get_json(&format!("/products/{id}")).await, before);
    app.stop().await;
}

/// An If-Match that is not a list of entity tags (no quotes) answers 400 and changes nothing.
#[actix_web::test]
async fn patch_with_malformed_if_match_is_bad_request() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    let before = app.get_json(&format!("/products/{id}")).await;

    // Act
    let res = app.patch(&id, &json!({"price": "2.00"}), Some("1")).await;

    // Assert
    let problem = assert_problem(res, 400, "bad-request").await;
    assert!(problem["detail"].as_str().unwrap().contains("If-Match"));
    assert_eq!(app.get_json(&format!("/products/{id}")).await, before);
    app.stop().await;
}

/// If-Match per RFC 9110: a list matches when one of its tags names the current version; weak
/// tags and tags this API never issued do not match (412, not 400); `*` matches; and the
/// precondition is judged after the record is found (404 and 410 stay 404 and 410).
#[actix_web::test]
async fn if_match_lists_weak_tags_and_foreign_tags() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    let gone = one(&app, "Gone", "1.00").await;
    assert_eq!(app.delete(&gone, None).await.status(), 204);
    let patch = json!({"price": "1.60"});

    // Act
    let foreign = app.patch(&id, &patch, Some("\"stale-etag\"")).await;
    let weak = app.patch(&id, &patch, Some("W/\"1\"")).await;
    let listed = app.patch(&id, &patch, Some("\"7\", \"1\"")).await;
    let any = app.patch(&id, &json!({"price": "1.70"}), Some("*")).await;
    let unknown = app
        .patch(&Uuid::now_v7().to_string(), &patch, Some("\"stale-etag\""))
        .await;
    let archived = app.patch(&gone, &patch, Some("\"1\"")).await;
    let deleted_stale = app.delete(&id, Some("\"1\"")).await;

    // Assert
    let problem = assert_problem(foreign, 412, "precondition-failed").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("\"stale-etag\""),
        "{problem}"
    );
    assert_problem(weak, 412, "precondition-failed").await;
    assert_eq!(listed.status(), 200);
    assert_eq!(any.status(), 200);
    assert_problem(unknown, 404, "not-found").await;
    assert_problem(archived, 410, "gone").await;
    assert_problem(deleted_stale, 412, "precondition-failed").await;
    let now = app.get_json(&format!("/products/{id}")).await;
    assert_eq!(
        (&now["price"], &now["version"]),
        (&json!("1.70"), &json!(3))
    );
    app.stop().await;
}

/// Patching an unknown id answers 404; an archived one 410 (and it stays archived).
#[actix_web::test]
async fn patch_unknown_or_archived() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    assert_eq!(app.delete(&id, None).await.status(), 204);
    let unknown = Uuid::new_v4().to_string();

    // Act
    let missing = app.patch(&unknown, &json!({"price": "1"}), None).await;
    let archived = app.patch(&id, &json!({"price": "1"}), None).await;

    // Assert
    assert_problem(missing, 404, "not-found").await;
    assert_problem(archived, 410, "gone").await;
    assert_eq!(app.get(&format!("/products/{id}")).await.status(), 410);
    app.stop().await;
}

// ---------------------------------------------------------------- delete

/// A delete answers 204 with no body, and the product leaves the list.
#[actix_web::test]
async fn delete_archives() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    let kept = one(&app, "Coffee", "2.50").await;

    // Act
    let res = app.delete(&id, None).await;

    // Assert
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
    let ids: Vec<String> = app.all().await.iter().map(id_of).collect();
    assert_eq!(ids, [kept]);
    app.stop().await;
}

/// Deleting an archived product again answers 410; an unknown one 404.
#[actix_web::test]
async fn delete_twice_is_gone() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    assert_eq!(app.delete(&id, None).await.status(), 204);

    // Act
    let again = app.delete(&id, None).await;
    let unknown = app.delete(&Uuid::new_v4().to_string(), None).await;

    // Assert
    assert_problem(again, 410, "gone").await;
    assert_problem(unknown, 404, "not-found").await;
    app.stop().await;
}

/// A delete with a stale If-Match answers 412 and the product stays; the current one deletes.
#[actix_web::test]
async fn delete_with_stale_if_match_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let id = one(&app, "Tea", "1.50").await;
    assert_eq!(
        app.patch(&id, &json!({"price": "2"}), None).await.status(),
        200
    );

    // Act
    let stale = app.delete(&id, Some("\"1\"")).await;
    let still_there = app.get(&format!("/products/{id}")).await.status();
    let current = app.delete(&id, Some("\"2\"")).await;

    // Assert
    assert_problem(stale, 412, "precondition-failed").await;
    assert_eq!(still_there, 200);
    assert_eq!(current.status(), 204);
    app.stop().await;
}

// ---------------------------------------------------------------- lookup

/// A lookup sorts each id into products (in request order), unknown and archived.
#[actix_web::test]
async fn lookup_sorts_ids() {
    // Arrange
    let app = spawn_app().await;
    let a = one(&app, "A", "1.00").await;
    let b = one(&app, "B", "2.00").await;
    let c = one(&app, "C", "3.00").await;
    assert_eq!(app.delete(&c, None).await.status(), 204);
    let u = Uuid::new_v4().to_string();

    // Act
    let res = app.lookup(&[&b, &u, &c, &a]).await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let found: Vec<String> = body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(found, [b.clone(), a.clone()]);
    assert_eq!(body["products"][0]["name"], "B");
    assert_eq!(body["products"][1]["price"], "1.00");
    assert_eq!(body["unknown"], json!([u]));
    assert_eq!(body["archived"], json!([c]));
    redactions().bind(|| insta::assert_json_snapshot!("lookup_response", body));
    app.stop().await;
}

/// A lookup with no ids answers 422 naming `ids`.
#[actix_web::test]
async fn lookup_without_ids_is_refused() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app.lookup(&[]).await;

    // Assert
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["ids"]);
    app.stop().await;
}

/// A lookup of 1000 ids is served; 1001 ids answer 422 naming `ids` (with a body limit large
/// enough to carry them: 1000 ids are about 39 KB of JSON).
#[actix_web::test]
async fn lookup_of_more_than_1000_ids_is_refused() {
    // Arrange
    let (dir, root) = fresh_dir();
    let app = spawn_with(dir.path(), root, Vec::new(), |c| {
        c.common.body_limit = 64 * 1024
    })
    .await;
    let ids: Vec<String> = (0..1001).map(|_| Uuid::new_v4().to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();

    // Act
    let most = app.lookup(&refs[..1000]).await;
    let too_many = app.lookup(&refs).await;

    // Assert
    assert_eq!(most.status(), 200);
    let body: Value = most.json().await.unwrap();
    assert_eq!(body["unknown"].as_array().unwrap().len(), 1000);
    let problem = assert_problem(too_many, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["ids"]);
    app.stop().await;
}

/// A lookup id that is not a UUID answers 422 naming `ids[0]`.
#[actix_web::test]
async fn lookup_with_a_non_uuid_names_the_element() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app.lookup(&["not-a-uuid"]).await;

    // Assert
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["ids[0]"]);
    app.stop().await;
}
