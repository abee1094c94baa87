//! The PowerDNS the DNS-record tests run against: it starts, serves what
//! its API is told over DNS, survives a stop and start with its data,
//! rotates its key, and dies with its handle.

use bosun_testenv::PowerDns;
use bosun_testenv::dns::RecordKind;
use bosun_testenv::tools;

fn pdns_present() -> bool {
    match tools::for_test("pdns_server", bosun_testenv::powerdns::INSTALL) {
        Ok(Some(_)) => true,
        // /usr/sbin is not on every PATH; the harness looks there too.
        Ok(None) => PowerDns::installed(),
        Err(missing) => PowerDns::installed() || panic!("{missing}"),
    }
}

#[test]
fn serves_over_dns_what_its_api_holds_and_keeps_it_across_a_restart() {
    if !pdns_present() {
        return;
    }
    let mut pdns = PowerDns::start().expect("PowerDNS starts");
    pdns.create_zone("example.org.").expect("zone created");
    pdns.edit_rrset(
        "example.org.",
        "www.example.org.",
        "A",
        120,
        &["192.0.2.7", "192.0.2.8"],
    )
    .expect("rrset written");
    let answer = pdns
        .query("www.example.org.", RecordKind::A)
        .expect("DNS answers");
    assert_eq!(answer.rcode, 0);
    assert_eq!(answer.contents(), ["192.0.2.7", "192.0.2.8"]);
    assert_eq!(answer.records[0].1, 120);
    let missing = pdns
        .query("nope.example.org.", RecordKind::A)
        .expect("DNS answers");
    assert_eq!(
        missing.rcode, 3,
        "NXDOMAIN for a name the zone does not hold"
    );

    pdns.stop();
    assert!(
        pdns.zone("example.org.").is_err(),
        "a stopped server does not answer"
    );
    pdns.start_again().expect("PowerDNS starts again");
    let rrset = pdns
        .rrset("example.org.", "www.example.org.", "A")
        .unwrap()
        .expect("the data stayed");
    assert_eq!(rrset["ttl"], 120);

    let old_key = pdns.api_key().to_owned();
    let new_key = pdns.restart_with_key().expect("restarted with a new key");
    assert_ne!(old_key, new_key);
    assert!(pdns.zone("example.org.").is_ok(), "the new key is accepted");

    let pid = pdns.pid().expect("running");
    drop(pdns);
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "dropping the handle kills pdns_server");
}
