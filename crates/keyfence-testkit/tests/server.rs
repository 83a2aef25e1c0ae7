//! The harness against the real PostgreSQL programs.

use keyfence_testkit::TempPostgres;

#[test]
fn starts_answers_and_survives_kill9_and_restart() {
    let mut pg = TempPostgres::new().unwrap();
    assert_eq!(pg.psql("SHOW fsync").unwrap().trim(), "on");
    assert_eq!(pg.psql("SHOW synchronous_commit").unwrap().trim(), "on");
    pg.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .unwrap();

    pg.kill9().unwrap();
    assert!(!pg.is_running());
    assert!(pg.psql("SELECT 1").is_err(), "killed server still answers");
    pg.start().unwrap();
    assert_eq!(pg.psql("SELECT v FROM t").unwrap().trim(), "1");

    let port = pg.port();
    pg.stop().unwrap();
    assert!(pg.psql("SELECT 1").is_err(), "stopped server still answers");
    pg.start().unwrap();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT count(*) FROM t").unwrap().trim(), "1");

    pg.create_database("other").unwrap();
    assert_eq!(pg.psql_on("other", "SELECT 2").unwrap().trim(), "2");
}

#[test]
fn two_servers_get_distinct_ports_and_directories() {
    let a = TempPostgres::new().unwrap();
    let b = TempPostgres::new().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    let dir = a.data_dir();
    drop(a);
    assert!(!dir.exists(), "data directory left behind");
    assert_eq!(b.psql("SELECT 1").unwrap().trim(), "1");
}

#[test]
fn synchronous_standby_follows_and_takes_over_when_promoted() {
    let mut primary = TempPostgres::new().unwrap();
    primary
        .psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .unwrap();
    let mut standby = TempPostgres::start_standby(&primary, true).unwrap();
    assert_eq!(
        primary
            .psql("SHOW synchronous_standby_names")
            .unwrap()
            .trim(),
        format!("FIRST 1 (\"{}\")", standby.name())
    );
    assert_eq!(
        standby.psql("SELECT pg_is_in_recovery()").unwrap().trim(),
        "t"
    );
    // A synchronous commit returns only once the standby has it.
    primary.psql("INSERT INTO t VALUES (2)").unwrap();
    primary.kill9().unwrap();
    standby.promote().unwrap();
    assert_eq!(
        standby
            .psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t")
            .unwrap()
            .trim(),
        "1,2"
    );
    standby.psql("INSERT INTO t VALUES (3)").unwrap();
}

#[test]
fn a_frozen_server_does_not_answer_until_thawed() {
    let mut pg = TempPostgres::new().unwrap();
    pg.freeze().unwrap();
    // psql's connect timeout (10 s) runs out: nothing answers.
    let started = std::time::Instant::now();
    assert!(pg.psql("SELECT 1").is_err(), "a frozen server answered");
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    pg.thaw().unwrap();
    assert_eq!(pg.psql("SELECT 1").unwrap().trim(), "1");
}
