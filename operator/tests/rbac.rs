//! `deploy/rbac.yaml` is least-privilege: no wildcard anywhere, `delete` only on Jobs (old
//! finished replay Jobs; everything else goes with its owner), and it grants what the operator
//! does (including everything it grants the replay Jobs: Kubernetes refuses to let a subject
//! create a Role with permissions it does not hold itself).

mod common;

use std::collections::BTreeSet;

use eventline_operator::crd::{Projection, ProjectionSpec};
use kube::Resource;
use serde_json::Value;

fn docs() -> Vec<Value> {
    common::yaml_documents("deploy/rbac.yaml")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// (apiGroup, resource, verb) triples a rule list grants.
fn grants(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    set.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    set
}

fn role(kind: &str, name: &str) -> Value {
    docs()
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} in deploy/rbac.yaml"))
}

fn triple(group: &str, resource: &str, verb: &str) -> (String, String, String) {
    (group.to_owned(), resource.to_owned(), verb.to_owned())
}

#[test]
fn no_wildcards_and_delete_only_on_jobs() {
    let docs = docs();
    let rules: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .flat_map(|d| d["rules"].as_array().expect("rules"))
        .collect();
    assert!(rules.len() >= 8, "the roles were read");
    for rule in &rules {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            for value in strings(&rule[field]) {
                assert!(!value.contains('*'), "wildcard in {field}: {rule}");
            }
        }
        for verb in strings(&rule["verbs"]) {
            assert!(
                !matches!(
                    verb.as_str(),
                    "deletecollection" | "escalate" | "bind" | "impersonate"
                ),
                "{verb} is not needed: {rule}"
            );
        }
        assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
    }
    let mut granted = BTreeSet::new();
    for rule in &rules {
        granted.extend(grants(&Value::Array(vec![(*rule).clone()])));
    }
    let deletes: Vec<_> = granted.iter().filter(|(_, _, v)| v == "delete").collect();
    assert_eq!(
        deletes,
        [&triple("batch", "jobs", "delete")],
        "delete only on Jobs (old finished replay Jobs; owned objects go with their owner)"
    );
    let on_pods: Vec<_> = granted.iter().filter(|(_, r, _)| r == "pods").collect();
    assert_eq!(
        on_pods,
        [&triple("", "pods", "list")],
        "pods are only listed (why a replay Job's pod waits)"
    );
}

#[test]
fn the_cluster_role_grants_what_the_operator_does() {
    let granted = grants(&role("ClusterRole", "eventline-operator")["rules"]);
    for needed in [
        triple("eventline.io", "projections", "list"),
        triple("eventline.io", "projections", "watch"),
        triple("eventline.io", "projections/status", "patch"),
        triple("apps", "deployments", "patch"),
        triple("apps", "deployments", "create"),
        triple("apps", "deployments", "watch"),
        triple("batch", "jobs", "get"),
        triple("batch", "jobs", "create"),
        triple("batch", "jobs", "watch"),
        triple("batch", "jobs", "list"),
        triple("batch", "jobs", "delete"),
        triple("", "pods", "list"),
        triple("", "serviceaccounts", "patch"),
        triple("rbac.authorization.k8s.io", "roles", "patch"),
        triple("rbac.authorization.k8s.io", "rolebindings", "patch"),
        triple("events.k8s.io", "events", "create"),
        triple("events.k8s.io", "events", "patch"),
    ] {
        assert!(granted.contains(&needed), "missing {needed:?}");
    }
    assert!(
        !granted.iter().any(|(_, r, _)| r == "secrets"),
        "the operator only passes Secret references, it never reads Secrets"
    );
    let lease = grants(&role("Role", "eventline-operator-leader-election")["rules"]);
    for verb in ["get", "create", "patch"] {
        assert!(
            lease.contains(&triple("coordination.k8s.io", "leases", verb)),
            "lease {verb}"
        );
    }
}

#[test]
fn the_operator_holds_every_permission_it_grants_to_replay_jobs() {
    let mut p = Projection::new(
        "accounts",
        serde_json::from_value::<ProjectionSpec>(
            common::yaml_documents("examples/live-projection.yaml")
                .into_iter()
                .find(|d| d["kind"] == "Projection")
                .expect("example")["spec"]
                .clone(),
        )
        .expect("spec"),
    );
    p.meta_mut().namespace = Some("bank".into());
    p.meta_mut().uid = Some("uid".into());
    let replay_role =
        serde_json::to_value(eventline_operator::resources::replay_role(&p).expect("role"))
            .expect("json");
    let operator = grants(&role("ClusterRole", "eventline-operator")["rules"]);
    let replay = grants(&replay_role["rules"]);
    assert!(!replay.is_empty());
    assert!(
        replay.is_subset(&operator),
        "{replay:?} not within {operator:?}"
    );
}

#[test]
fn bindings_point_at_the_operator_service_account() {
    for (kind, name) in [
        ("ClusterRoleBinding", "eventline-operator"),
        ("RoleBinding", "eventline-operator-leader-election"),
    ] {
        let binding = role(kind, name);
        assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(binding["subjects"][0]["name"], "eventline-operator");
        assert_eq!(binding["subjects"][0]["namespace"], "eventline-system");
    }
}

#[test]
fn the_operator_deployment_runs_non_root_with_leader_election() {
    let deployment = common::yaml_documents("deploy/operator.yaml").remove(0);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "eventline-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let env: Vec<String> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect();
    assert!(
        env.iter().all(|n| n.starts_with("EVENTLINE_OPERATOR_")),
        "{env:?}"
    );
    assert!(env.contains(&"EVENTLINE_OPERATOR_IDENTITY".to_owned()));
}
