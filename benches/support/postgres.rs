//! Which Postgres server a benchmark runs against, and a new database on it for each run, so
//! runs never see each other's rows.

/// `FERRY_BENCH_POSTGRES_URL`, else `FERRY_TEST_POSTGRES_URL`; says so when neither is set.
pub fn server_url() -> Option<String> {
    let url = std::env::var("FERRY_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("FERRY_TEST_POSTGRES_URL"))
        .ok();
    if url.is_none() {
        eprintln!("postgres skipped: set FERRY_BENCH_POSTGRES_URL");
    }
    url
}

/// Creates an empty database on the server `url` points at, and returns its URL (its name is
/// the last segment).
pub async fn fresh_database(url: &str) -> String {
    use sqlx::Connection;
    let name = format!("ferry_bench_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{name}")
}
