//! Regions and multi-Region keys over the in-memory store.

use super::*;
use crate::model::MultiRegionKeyType::{Primary, Replica};
use crate::service::{MultiRegionRefusal, ReplicateKeyInput};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";

/// A Kms serving us-east-1 (the default) and eu-west-1 over `f`'s store.
fn two_regions(f: &Fixture) -> Kms {
    Kms::open(f.store.clone(), &f.root, f.clock.clone(), EAST)
        .unwrap()
        .with_regions(&[WEST])
        .unwrap()
}

fn mrk(kms: &Kms) -> KeyMetadata {
    let input = CreateKeyInput {
        multi_region: true,
        ..CreateKeyInput::default()
    };
    kms.create_key(A, input).unwrap()
}

fn replicate(kms: &Kms, primary: &KeyMetadata, region: &str) -> Result<KeyMetadata, KmsError> {
    kms.replicate_key(
        A,
        &primary.arn(),
        region,
        ReplicateKeyInput {
            description: Some("replica".into()),
            tags: vec![("team".into(), "west".into())],
        },
    )
}

fn west<T>(kms: &Kms, f: impl FnOnce() -> T) -> T {
    kms.in_region(WEST, f).unwrap()
}

fn refusal(e: KmsError) -> MultiRegionRefusal {
    match e {
        KmsError::MultiRegion(r) => r,
        other => panic!("not a multi-Region refusal: {other:?}"),
    }
}

#[test]
fn keys_are_partitioned_by_region_and_arns_carry_it() {
    let f = Fixture::new();
    let kms = two_regions(&f);
    let east = kms.create_key(A, CreateKeyInput::default()).unwrap();
    let west_key = west(&kms, || {
        kms.create_key(A, CreateKeyInput::default()).unwrap()
    });
    assert_eq!(east.region, EAST);
    assert_eq!(west_key.region, WEST);
    assert!(west_key
        .arn()
        .starts_with("arn:aws:kms:eu-west-1:111122223333:key/"));
    // A key of us-east-1 asked for in eu-west-1, by id, is not found there,
    // named by the ARN it would have in eu-west-1.
    let id = east.id.to_string();
    match west(&kms, || kms.describe_key(A, &id)) {
        Err(KmsError::NotFound(Missing::Key { arn })) => {
            assert_eq!(arn, format!("arn:aws:kms:eu-west-1:{A}:key/{id}"))
        }
        other => panic!("{other:?}"),
    }
    // By its own ARN from the other region: not found either.
    assert!(matches!(
        west(&kms, || kms.describe_key(A, &east.arn())),
        Err(KmsError::NotFound(_))
    ));
    // Listings are per region.
    let listed = |in_west: bool| {
        let list = || kms.list_keys(A, None, None).unwrap().items;
        let keys = if in_west { west(&kms, list) } else { list() };
        keys.into_iter().map(|k| k.id).collect::<Vec<_>>()
    };
    assert_eq!(listed(false), vec![east.id]);
    assert_eq!(listed(true), vec![west_key.id]);
    // A ciphertext of one region's key is no ciphertext in the other.
    let ct = kms
        .encrypt(A, &east.arn(), b"secret", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    assert!(matches!(
        west(&kms, || kms.decrypt(A, &ct, &ctx(&[]), None, None)),
        Err(KmsError::InvalidCiphertext(_))
    ));
    // A region this node does not serve.
    assert!(matches!(
        kms.in_region("ap-south-1", || ()),
        Err(KmsError::RegionNotServed { region }) if region == "ap-south-1"
    ));
    assert_eq!(kms.regions().collect::<Vec<_>>(), vec![EAST, WEST]);
    // Outside a request, the default region.
    assert_eq!(kms.region(), EAST);
}

#[test]
fn aliases_are_named_per_region() {
    let f = Fixture::new();
    let kms = two_regions(&f);
    let east = kms.create_key(A, CreateKeyInput::default()).unwrap();
    let west_key = west(&kms, || {
        kms.create_key(A, CreateKeyInput::default()).unwrap()
    });
    let (east_id, west_id) = (east.id.to_string(), west_key.id.to_string());
    // The same name in both regions, each for a key of its own region.
    kms.create_alias(A, "alias/app", &east_id).unwrap();
    west(&kms, || kms.create_alias(A, "alias/app", &west_id)).unwrap();
    // A name resolves in the request's region, by name and by ARN.
    assert_eq!(kms.describe_key(A, "alias/app").unwrap().id, east.id);
    assert_eq!(
        west(&kms, || kms.describe_key(A, "alias/app")).unwrap().id,
        west_key.id
    );
    let west_arn = format!("arn:aws:kms:{WEST}:{A}:alias/app");
    assert_eq!(
        west(&kms, || kms.describe_key(A, &west_arn)).unwrap().id,
        west_key.id
    );
    assert!(matches!(
        kms.describe_key(A, &west_arn),
        Err(KmsError::NotFound(_))
    ));
    // Listings show the region's own aliases only.
    let listed = |in_west: bool| {
        let list = || kms.list_aliases(A, None, None, None).unwrap().items;
        let aliases = if in_west { west(&kms, list) } else { list() };
        aliases
            .into_iter()
            .map(|a| (a.name.as_str().to_string(), a.region, a.target))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(false),
        vec![("alias/app".into(), EAST.into(), east.id)]
    );
    assert_eq!(
        listed(true),
        vec![("alias/app".into(), WEST.into(), west_key.id)]
    );
    // A key of another region is no target (AWS: NotFoundException).
    assert!(matches!(
        kms.create_alias(A, "alias/cross", &west_id),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        kms.create_alias(A, "alias/cross", &west_key.arn()),
        Err(KmsError::NotFound(_))
    ));
    // UpdateAlias and DeleteAlias act in the request's region only.
    let west_two = west(&kms, || {
        kms.create_key(A, CreateKeyInput::default()).unwrap()
    });
    assert!(matches!(
        kms.update_alias(A, "alias/app", &west_two.id.to_string()),
        Err(KmsError::NotFound(_))
    ));
    west(&kms, || {
        kms.update_alias(A, "alias/app", &west_two.id.to_string())
    })
    .unwrap();
    assert_eq!(kms.describe_key(A, "alias/app").unwrap().id, east.id);
    west(&kms, || kms.delete_alias(A, "alias/app")).unwrap();
    assert!(matches!(
        west(&kms, || kms.describe_key(A, "alias/app")),
        Err(KmsError::NotFound(_))
    ));
    assert_eq!(kms.describe_key(A, "alias/app").unwrap().id, east.id);
    assert!(matches!(
        west(&kms, || kms.delete_alias(A, "alias/app")),
        Err(KmsError::NotFound(_))
    ));
    // The name is taken per region: again in us-east-1 is a conflict.
    assert!(matches!(
        kms.create_alias(A, "alias/app", &east_id),
        Err(KmsError::AlreadyExists { .. })
    ));
}

#[test]
fn a_replica_decrypts_what_its_primary_encrypted_and_describes_the_configuration() {
    let f = Fixture::new();
    let kms = two_regions(&f);
    let primary = mrk(&kms);
    let public = primary.id.public().to_string();
    assert!(public.starts_with("mrk-") && public.len() == 36, "{public}");
    assert_eq!(primary.multi_region, Some(Primary));
    let ct = kms
        .encrypt(A, &public, b"across regions", &ctx(&[("k", "v")]), None)
        .unwrap()
        .ciphertext;

    let replica = replicate(&kms, &primary, WEST).unwrap();
    assert_eq!(replica.id.public().to_string(), public);
    assert_eq!(replica.region, WEST);
    assert_eq!(replica.multi_region, Some(Replica));
    assert_eq!(replica.description, "replica");
    assert_eq!(replica.tags.get("team").map(String::as_str), Some("west"));

    let out = west(&kms, || {
        kms.decrypt(A, &ct, &ctx(&[("k", "v")]), Some(&public), None)
    })
    .unwrap();
    assert_eq!(out.plaintext.expose(), b"across regions");
    assert_eq!(out.key_arn, format!("arn:aws:kms:{WEST}:{A}:key/{public}"));
    // And back: the replica's ciphertext decrypts under the primary.
    let back = west(&kms, || kms.encrypt(A, &public, b"back", &ctx(&[]), None))
        .unwrap()
        .ciphertext;
    let out = kms.decrypt(A, &back, &ctx(&[]), None, None).unwrap();
    assert_eq!(out.plaintext.expose(), b"back");

    let config = kms.multi_region_configuration(&primary).unwrap();
    assert_eq!(config.key_type, Primary);
    assert_eq!(config.primary.unwrap().arn, primary.arn());
    assert_eq!(
        config
            .replicas
            .iter()
            .map(|m| m.arn.clone())
            .collect::<Vec<_>>(),
        vec![replica.arn()]
    );
    assert!(kms
        .multi_region_configuration(&kms.create_key(A, CreateKeyInput::default()).unwrap())
        .is_none());

    // Refusals: again into the same region, into its own region, from a
    // replica, into a region not served, a single-Region key.
    assert!(matches!(
        refusal(replicate(&kms, &primary, WEST).unwrap_err()),
        MultiRegionRefusal::ReplicaExists { key } if key == replica.arn()
    ));
    assert!(matches!(
        refusal(replicate(&kms, &primary, EAST).unwrap_err()),
        MultiRegionRefusal::SameRegion { .. }
    ));
    assert!(matches!(
        refusal(west(&kms, || replicate(&kms, &replica, EAST)).unwrap_err()),
        MultiRegionRefusal::Replica { .. }
    ));
    assert!(matches!(
        refusal(replicate(&kms, &primary, "ap-south-1").unwrap_err()),
        MultiRegionRefusal::RegionNotServed { .. }
    ));
    let single = kms.create_key(A, CreateKeyInput::default()).unwrap();
    assert!(matches!(
        refusal(replicate(&kms, &single, WEST).unwrap_err()),
        MultiRegionRefusal::NotMultiRegion { .. }
    ));
    // Another account's caller does not find the primary.
    assert!(matches!(
        kms.replicate_key(B, &primary.arn(), WEST, ReplicateKeyInput::default()),
        Err(KmsError::NotFound(_))
    ));
}

#[test]
fn rotation_is_driven_from_the_primary_and_reaches_the_replicas() {
    let f = Fixture::new();
    let kms = two_regions(&f);
    let primary = mrk(&kms);
    let replica = replicate(&kms, &primary, WEST).unwrap();
    let public = primary.id.public().to_string();

    // On the replica: refused.
    for result in [
        west(&kms, || kms.rotate_key_on_demand(A, &public).map(drop)),
        west(&kms, || kms.enable_key_rotation(A, &public, None)),
        west(&kms, || kms.disable_key_rotation(A, &public)),
    ] {
        assert!(matches!(
            refusal(result.unwrap_err()),
            MultiRegionRefusal::Replica { key } if key == replica.arn()
        ));
    }

    let rotated = kms.rotate_key_on_demand(A, &public).unwrap();
    assert_eq!(rotated.current_version, 2);
    let synced = west(&kms, || kms.describe_key(A, &public)).unwrap();
    assert_eq!(synced.current_version, 2);
    assert_eq!(synced.rotations, rotated.rotations);
    // Made under version 2 in one region, decrypted in the other.
    let ct = kms
        .encrypt(A, &public, b"v2", &ctx(&[]), None)
        .unwrap()
        .ciphertext;
    let out = west(&kms, || kms.decrypt(A, &ct, &ctx(&[]), None, None)).unwrap();
    assert_eq!(out.plaintext.expose(), b"v2");

    kms.enable_key_rotation(A, &public, Some(180)).unwrap();
    let status = west(&kms, || kms.get_key_rotation_status(A, &public)).unwrap();
    assert!(status.enabled);
    assert_eq!(status.period_days, Some(180));

    // The schedule rotates the primary only, and the replica follows.
    f.clock.advance_days(181);
    kms.run_due_tasks().unwrap();
    assert_eq!(kms.describe_key(A, &public).unwrap().current_version, 3);
    assert_eq!(
        west(&kms, || kms.describe_key(A, &public))
            .unwrap()
            .current_version,
        3
    );
}

#[test]
fn update_primary_region_swaps_the_roles() {
    let f = Fixture::new();
    let kms = two_regions(&f);
    let primary = mrk(&kms);
    let replica = replicate(&kms, &primary, WEST).unwrap();
    let public = primary.id.public().to_string();

    // Only the primary is re-homed, and only to a region with a replica.
    assert!(matches!(
        refusal(west(&kms, || kms.update_primary_region(A, &public, EAST)).unwrap_err()),
        MultiRegionRefusal::Replica { .. }
    ));
    let other = mrk(&kms);
    assert!(matches!(
        refusal(kms.update_primary_region(A, &other.arn(), WEST).unwrap_err()),
        MultiRegionRefusal::NoReplica { key } if key.contains(WEST)
    ));

    kms.update_primary_region(A, &public, WEST).unwrap();
    let east = kms.describe_key(A, &public).unwrap();
    let west_key = west(&kms, || kms.describe_key(A, &public)).unwrap();
    assert_eq!(east.multi_region, Some(Replica));
    assert_eq!(west_key.multi_region, Some(Primary));
    let config = kms.multi_region_configuration(&east).unwrap();
    assert_eq!(config.key_type, Replica);
    assert_eq!(config.primary.unwrap().arn, replica.arn());
    assert_eq!(config.replicas[0].arn, primary.arn());

    // Now rotation is driven from eu-west-1 and refused in us-east-1.
    assert!(matches!(
        refusal(kms.rotate_key_on_demand(A, &public).unwrap_err()),
        MultiRegionRefusal::Replica { .. }
    ));
    west(&kms, || kms.rotate_key_on_demand(A, &public)).unwrap();
    assert_eq!(kms.describe_key(A, &public).unwrap().current_version, 2);

    // Everything survives a restart (the roles and the replica's material).
    let ct = west(&kms, || kms.encrypt(A, &public, b"kept", &ctx(&[]), None))
        .unwrap()
        .ciphertext;
    drop(kms);
    let kms = two_regions(&f);
    assert_eq!(
        kms.describe_key(A, &public).unwrap().multi_region,
        Some(Replica)
    );
    let out = kms.decrypt(A, &ct, &ctx(&[]), None, None).unwrap();
    assert_eq!(out.plaintext.expose(), b"kept");
}
