//! Property tests (proptest, on stable, in CI) for the edge stage's path normalizer and
//! authority check: the functions every request goes through (`head::path::normalize`,
//! `head::path::join_base`, `head::authority`). They call the same entry points as the
//! cargo-fuzz targets `path_normalize` and `authority` (`switchboard_gateway::fuzzing`), with
//! inputs built from the pieces attacks are made of, so they reach the interesting cases
//! random bytes rarely hit. The invariants (checked inside those functions): idempotence, no
//! `.`/`..` segment in the output, never above a backend's base path, the same answer when
//! unreserved characters are percent-encoded, one agreeing authority.

use proptest::prelude::*;
use switchboard_gateway::config::PathsConfig;
use switchboard_gateway::fuzzing;
use switchboard_gateway::head::path::{join_base, normalize};

/// 256 cases per property, unless `PROPTEST_CASES` asks for another number.
fn cases() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

/// One path segment made of the pieces path tricks use.
fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just("%2f".to_string()),
            Just("%5C".to_string()),
            Just("\\".to_string()),
            Just("%00".to_string()),
            Just("%25".to_string()),
            Just("%".to_string()),
            Just("%zz".to_string()),
            Just("%61".to_string()),
            Just("%7E".to_string()),
            Just("%20".to_string()),
            Just("é".to_string()),
            "[a-zA-Z0-9._~-]{1,3}",
        ],
        0..3,
    )
    .prop_map(|parts| parts.concat())
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..8).prop_map(|segs| format!("/{}", segs.join("/")))
}

fn host_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("admin.example".to_string()),
        Just("Admin.Example.".to_string()),
        Just("admin.example..".to_string()),
        Just("public.example".to_string()),
        Just("[::1]".to_string()),
        Just("[0:0::1]".to_string()),
        Just("127.0.0.1".to_string()),
        Just("u@admin.example".to_string()),
        Just("".to_string()),
        "[a-zA-Z0-9.%_-]{0,12}",
    ]
}

fn authority() -> impl Strategy<Value = String> {
    (
        host_piece(),
        prop_oneof![
            Just("".to_string()),
            Just(":".to_string()),
            Just(":80".to_string()),
            Just(":443".to_string()),
            Just(":080".to_string()),
            Just(":abc".to_string()),
            Just(":65536".to_string()),
            ":[0-9]{1,6}",
        ],
    )
        .prop_map(|(h, p)| format!("{h}{p}"))
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn path_normalizer_on_attack_pieces(selector in 0u8..4, p in path()) {
        let mut data = vec![selector];
        data.extend_from_slice(p.as_bytes());
        fuzzing::path_normalize(&data);
    }

    #[test]
    fn path_normalizer_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..64)) {
        fuzzing::path_normalize(&data);
    }

    #[test]
    fn every_spelling_of_an_admin_path_is_the_admin_path(
        rest in prop::collection::vec("[a-zA-Z0-9_~-]{1,4}", 0..4),
        spelling in 0usize..7,
    ) {
        let rest = rest.join("/");
        let plain = format!("/admin/{rest}");
        let spelled = match spelling {
            0 => format!("/%61dmin/{rest}"),
            1 => format!("/x/../admin/{rest}"),
            2 => format!("//admin/{rest}"),
            3 => format!("/./admin/{rest}"),
            4 => format!("/%2e/admin/{rest}"),
            5 => format!("/ADMIN/%2E%2E/admin//{rest}"),
            _ => format!("/admin/./{rest}"),
        };
        let cfg = PathsConfig::default();
        prop_assert_eq!(
            normalize(&spelled, &cfg).unwrap().into_owned(),
            normalize(&plain, &cfg).unwrap().into_owned()
        );
        prop_assert!(switchboard_gateway::config::prefix_matches(
            "/admin",
            &normalize(&spelled, &cfg).unwrap()
        ));
    }

    #[test]
    fn joined_paths_stay_under_the_base(p in path(), q in "[a-z=/.%]{0,6}") {
        let pq = if q.is_empty() { p.clone() } else { format!("{p}?{q}") };
        let joined = join_base("/public", Some("/api"), &pq);
        let path = joined.split('?').next().unwrap();
        prop_assert!(path == "/public" || path.starts_with("/public/"), "{} -> {}", pq, joined);
        prop_assert!(!path.split('/').any(|s| s == ".." || s == "."), "{} -> {}", pq, joined);
        if !q.is_empty() {
            prop_assert!(joined.ends_with(&format!("?{q}")), "query changed: {} -> {}", pq, joined);
        }
    }

    #[test]
    fn authority_check_on_hosts(
        selector in any::<u8>(),
        target in authority(),
        hosts in prop::collection::vec(authority(), 0..3),
    ) {
        let text = std::iter::once(target).chain(hosts).collect::<Vec<_>>().join("\n");
        let mut data = vec![selector];
        data.extend_from_slice(text.as_bytes());
        fuzzing::authority(&data);
    }

    #[test]
    fn authority_check_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..48)) {
        fuzzing::authority(&data);
    }
}
