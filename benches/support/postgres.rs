//! A new Postgres database for each benchmark run, so runs never see each other's rows.

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
