//! Operator scopes, their implication rules and the required scope / role of
//! each method clawgate implements (protocol.md §12, §17).

use super::connect::Role;

pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const ADMIN: &str = "operator.admin";
pub const PAIRING: &str = "operator.pairing";
pub const APPROVALS: &str = "operator.approvals";
pub const TALK: &str = "operator.talk";
pub const TALK_SECRETS: &str = "operator.talk.secrets";

/// `CLI_DEFAULT_OPERATOR_SCOPES`.
pub const CLI_DEFAULT_SCOPES: &[&str] = &[ADMIN, READ, WRITE, APPROVALS, PAIRING, TALK_SECRETS];

/// Whether `held` satisfies `required` (`operator-scope-compat.ts`):
/// admin ⇒ every `operator.*`; write ⇒ read (and talk); otherwise exact.
pub fn satisfies(held: &[String], required: &str) -> bool {
    held.iter().any(|h| {
        h == required
            || (h == ADMIN && required.starts_with("operator."))
            || (h == WRITE && (required == READ || required == TALK))
    })
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Operator role with this scope.
    Operator(&'static str),
    /// Node role only.
    Node,
}

/// The access rule of every method clawgate serves; `None` = unknown method.
pub fn method_access(method: &str) -> Option<Access> {
    use Access::*;
    Some(match method {
        "health"
        | "status"
        | "system-presence"
        | "last-heartbeat"
        | "gateway.identity.get"
        | "node.list"
        | "node.describe"
        | "config.get" => Operator(READ),
        "system-event" => Operator(ADMIN),
        "node.invoke" | "node.pending.enqueue" => Operator(WRITE),
        "device.pair.list"
        | "device.pair.approve"
        | "device.pair.reject"
        | "device.pair.remove"
        | "device.pair.rename"
        | "device.token.rotate"
        | "device.token.revoke"
        | "node.pair.list"
        | "node.pair.approve"
        | "node.pair.reject"
        | "node.pair.remove"
        | "node.rename" => Operator(PAIRING),
        "device.pair.setupCode" | "device.pair.setupStatus" => Operator(ADMIN),
        "node.invoke.result"
        | "node.invoke.progress"
        | "node.event"
        | "node.pending.pull"
        | "node.pending.ack"
        | "node.pending.drain" => Node,
        _ => return None,
    })
}

/// Checks role then scope; `Err` carries the failure kind.
pub fn authorize(access: Access, role: Role, scopes: &[String]) -> Result<(), Denied> {
    match (access, role) {
        (Access::Node, Role::Node) => Ok(()),
        (Access::Node, Role::Operator) | (Access::Operator(_), Role::Node) => Err(Denied::Role),
        (Access::Operator(scope), Role::Operator) if satisfies(scopes, scope) => Ok(()),
        (Access::Operator(scope), Role::Operator) => Err(Denied::Scope(scope)),
    }
}

/// Why a method call was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Role,
    Scope(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn implication_rules() {
        assert!(satisfies(&s(&[ADMIN]), PAIRING));
        assert!(satisfies(&s(&[ADMIN]), "operator.future"));
        assert!(satisfies(&s(&[WRITE]), READ));
        assert!(!satisfies(&s(&[READ]), WRITE));
        assert!(!satisfies(&s(&[PAIRING]), ADMIN));
        assert!(!satisfies(&[], READ));
        assert!(!satisfies(&s(&["node.x"]), READ));
    }

    #[test]
    fn authorize_checks_role_then_scope() {
        let read = method_access("health").unwrap();
        assert_eq!(authorize(read, Role::Operator, &s(&[READ])), Ok(()));
        assert_eq!(
            authorize(read, Role::Operator, &[]),
            Err(Denied::Scope(READ))
        );
        assert_eq!(authorize(read, Role::Node, &s(&[ADMIN])), Err(Denied::Role));
        let node = method_access("node.invoke.result").unwrap();
        assert_eq!(
            authorize(node, Role::Operator, &s(&[ADMIN])),
            Err(Denied::Role)
        );
        assert!(method_access("config.apply").is_none());
    }
}
