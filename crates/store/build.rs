//! `sqlx::migrate!` embeds the migrations at the workspace root; without this a new migration
//! would not rebuild the store.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
