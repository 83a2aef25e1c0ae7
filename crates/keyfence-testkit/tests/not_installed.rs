//! A missing PostgreSQL fails loudly, naming the script that installs it
//! (its own test binary: it changes the process environment).

use keyfence_testkit::{PgError, TempPostgres};

#[test]
fn missing_server_programs_fail_naming_the_setup_script() {
    std::env::set_var("KEYFENCE_PG_BIN", "/nonexistent/keyfence-test");
    let err = TempPostgres::new().unwrap_err();
    assert!(matches!(err, PgError::NotInstalled(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("scripts/setup-postgres.sh"), "{message}");
    assert!(message.contains("/nonexistent/keyfence-test"), "{message}");
}
