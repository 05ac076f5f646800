use std::time::Duration;

use mark1_actors::ports::MemoryStore;

use super::*;

fn spec(role: Role, namespace: Option<&str>) -> KeySpec {
    KeySpec {
        role,
        namespace: namespace.map(Into::into),
        name: "ci".into(),
        created_by: Some("cli:alice".into()),
        expires_at: None,
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn a_new_key_verifies_as_its_principal_and_only_its_digest_is_kept() {
    let (key, record) = generate(spec(Role::Developer, Some("team-a")), now()).unwrap();
    assert_eq!(key.len(), PREFIX.len() + 1 + ID_CHARS + 1 + SECRET_CHARS);
    assert!(key.starts_with(&format!("mk1_{}_", record.id)), "{key}");
    assert_eq!(parse(&key).unwrap().id, record.id);
    assert_eq!(record.sha256, <[u8; 32]>::from(Sha256::digest(key.as_bytes())));
    assert!(!format!("{record:?}").contains(&key[17..]), "the record does not hold the secret");
    let principal = verify(&record, &key, now()).unwrap();
    assert_eq!(principal.subject, format!("key:{}", record.id));
    assert_eq!((principal.role, principal.namespace.as_deref()), (Role::Developer, Some("team-a")));
    assert_eq!((record.name.as_str(), record.created_by.as_deref()), ("ci", Some("cli:alice")));
}

#[test]
fn keys_differ_every_time() {
    let (a, ra) = generate(spec(Role::Admin, None), now()).unwrap();
    let (b, rb) = generate(spec(Role::Admin, None), now()).unwrap();
    assert_ne!(a, b);
    assert_ne!(ra.id, rb.id);
    assert_eq!(verify(&ra, &b, now()), Err(KeyRejected::Mismatch), "another key's text");
}

#[test]
fn a_changed_secret_or_id_is_a_mismatch() {
    let (key, record) = generate(spec(Role::Viewer, Some("team-a")), now()).unwrap();
    let last = key.chars().last().unwrap();
    let mut tampered = key[..key.len() - 1].to_string();
    // Keep a valid final base64 character (it carries only 4 bits of the secret).
    tampered.push(if last == 'A' { 'Q' } else { 'A' });
    assert_eq!(verify(&record, &tampered, now()), Err(KeyRejected::Mismatch));
    let mut other_id = record.clone();
    other_id.id = "000000000000".into();
    assert_eq!(verify(&other_id, &key, now()), Err(KeyRejected::Mismatch));
}

#[test]
fn revoked_and_expired_keys_are_refused_after_the_secret_checks() {
    let mut with_expiry = spec(Role::Operator, Some("ops"));
    with_expiry.expires_at = Some(now() + Duration::from_secs(60));
    let (key, mut record) = generate(with_expiry, now()).unwrap();
    assert!(verify(&record, &key, now() + Duration::from_secs(59)).is_ok());
    assert_eq!(verify(&record, &key, now() + Duration::from_secs(60)), Err(KeyRejected::Expired));
    record.revoked_at = Some(now() + Duration::from_secs(10));
    assert!(verify(&record, &key, now() + Duration::from_secs(9)).is_ok());
    assert_eq!(verify(&record, &key, now() + Duration::from_secs(10)), Err(KeyRejected::Revoked));
    assert_eq!(verify(&record, &key, now() + Duration::from_secs(99)), Err(KeyRejected::Revoked));
    let (stranger, _) = generate(spec(Role::Operator, Some("ops")), now()).unwrap();
    let forged = format!("mk1_{}_{}", record.id, &stranger[17..]);
    assert_eq!(verify(&record, &forged, now() + Duration::from_secs(99)), Err(KeyRejected::Mismatch));
}

#[test]
fn malformed_keys_are_named() {
    let (key, _) = generate(spec(Role::Admin, None), now()).unwrap();
    let secret = &key[17..];
    for (text, why) in [
        ("", MalformedKey::Prefix),
        ("Bearer mk1_x", MalformedKey::Prefix),
        ("mk2_0123456789ab_x", MalformedKey::Prefix),
        ("mk1_", MalformedKey::Id),
        ("mk1_0123456789ab", MalformedKey::Id),
        ("mk1_0123456789AB_x", MalformedKey::Id),
        ("mk1_0123456789a_x", MalformedKey::Id),
        ("mk1_0123456789ab_", MalformedKey::Secret),
        ("mk1_0123456789ab_tooshort", MalformedKey::Secret),
    ] {
        assert_eq!(parse(text), Err(why), "{text:?}");
    }
    assert_eq!(parse(&format!("mk1_0123456789ab_{secret}x")), Err(MalformedKey::Secret));
    let bad_char = format!("mk1_0123456789ab_{}+", &secret[..SECRET_CHARS - 1]);
    assert_eq!(parse(&bad_char), Err(MalformedKey::Secret));
    let message = KeyRejected::from(MalformedKey::Secret).to_string();
    assert!(message.starts_with("malformed API key"), "{message}");
}

#[test]
fn only_admin_keys_may_span_every_namespace() {
    for role in Role::ALL {
        let outcome = generate(spec(role, None), now());
        match role {
            Role::Admin => assert_eq!(outcome.unwrap().1.principal().namespace, None),
            _ => assert_eq!(outcome.unwrap_err(), KeySpecError::NamespaceRequired { role }),
        }
    }
    assert!(generate(spec(Role::Admin, Some("team-a")), now()).is_ok());
    assert_eq!(
        generate(spec(Role::Agent, Some("Team A")), now()).unwrap_err(),
        KeySpecError::InvalidNamespace("Team A".into())
    );
    let mut expired = spec(Role::Admin, None);
    expired.expires_at = Some(now());
    assert_eq!(generate(expired, now()).unwrap_err(), KeySpecError::AlreadyExpired);
}

#[tokio::test]
async fn authenticate_looks_the_key_up_by_its_id() {
    let store = MemoryStore::new();
    let (key, record) = generate(spec(Role::Developer, Some("team-a")), now()).unwrap();
    assert_eq!(authenticate(&store, &key, now()).await, Err(AuthError::Rejected(KeyRejected::Unknown)));
    store.put_api_key(&record).await.unwrap();
    assert_eq!(authenticate(&store, &key, now()).await.unwrap().subject, format!("key:{}", record.id));
    assert!(store.revoke_api_key(&record.id, now()).await.unwrap());
    assert_eq!(authenticate(&store, &key, now()).await, Err(AuthError::Rejected(KeyRejected::Revoked)));
    assert_eq!(
        authenticate(&store, "nonsense", now()).await,
        Err(AuthError::Rejected(KeyRejected::Malformed(MalformedKey::Prefix)))
    );
}
