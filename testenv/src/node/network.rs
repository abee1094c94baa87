//! The node's network: a veth pair between the machine and the node's
//! namespace, the address ranges the node uses, and the bridge CNI
//! configuration its Pods are wired with.
//!
//! Every range is the node's own and lives only on this machine: the
//! link between host and node (`10.251.<slot>.0/30`), the Pods'
//! (`10.252.<slot>.0/24`, on a bridge inside the node's namespace) and the
//! Services' (`10.253.<slot>.0/24`, virtual: kube-proxy's rules inside the
//! node's namespace). The machine gets one interface (`bosun<slot>`, the
//! veth's host end, which also picks the slot: creating it fails if a
//! concurrent node has it) and routes to the Pod and Service ranges
//! through it; all of them vanish with the node's namespace. The node's
//! namespace has no default route and the machine does not forward
//! (`net.ipv4.ip_forward` is left as it is, 0 here), so no packet from a
//! Pod can leave the machine.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::json;

use super::error::NodeError;
use super::sandbox::Sandbox;

/// How many nodes one machine can hold at once.
const SLOTS: u8 = 200;

/// The addresses and names of one node.
#[derive(Debug, Clone)]
pub struct NetworkPlan {
    /// The slot, 0..200: the third octet of every range.
    pub slot: u8,
    /// The veth's end on the machine, `bosun<slot>`.
    pub host_interface: String,
    /// The machine's address on the link: the API server binds and
    /// advertises it, so Pods reach it through the `kubernetes` Service.
    pub host_ip: Ipv4Addr,
    /// The node's address (the kubelet's `--node-ip`).
    pub node_ip: Ipv4Addr,
    /// The Pods' range, on the node's bridge.
    pub pod_cidr: String,
    /// The Services' range (`--service-cluster-ip-range`).
    pub service_cidr: String,
    /// The `kubernetes` Service's ClusterIP, the first of the range.
    pub kubernetes_service_ip: Ipv4Addr,
}

impl NetworkPlan {
    fn for_slot(slot: u8) -> NetworkPlan {
        NetworkPlan {
            slot,
            host_interface: format!("bosun{slot}"),
            host_ip: Ipv4Addr::new(10, 251, slot, 1),
            node_ip: Ipv4Addr::new(10, 251, slot, 2),
            pod_cidr: format!("10.252.{slot}.0/24"),
            service_cidr: format!("10.253.{slot}.0/24"),
            kubernetes_service_ip: Ipv4Addr::new(10, 253, slot, 1),
        }
    }

    /// Creates the veth pair (taking the first free slot), addresses both
    /// ends, brings them up and routes the Pod and Service ranges to the
    /// node; inside the node, turns on forwarding (for that namespace only:
    /// from the link to the bridge and back).
    pub(crate) fn create(sandbox: &Sandbox) -> Result<NetworkPlan, NodeError> {
        let holder = sandbox.holder_pid().to_string();
        let mut taken = None;
        for slot in 0..SLOTS {
            let plan = NetworkPlan::for_slot(slot);
            match ip(&[
                "link",
                "add",
                &plan.host_interface,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &holder,
            ]) {
                Ok(_) => {
                    taken = Some(plan);
                    break;
                }
                Err(NodeError::Command { output, .. }) if output.contains("File exists") => {}
                Err(e) => return Err(e),
            }
        }
        let plan = taken.ok_or_else(|| NodeError::Unavailable {
            missing: format!("a free slot: bosun0 to bosun{} all exist", SLOTS - 1),
            install: "remove stale `bosun<N>` interfaces (ip link del bosunN)".into(),
        })?;
        let host_cidr = format!("{}/30", plan.host_ip);
        let node_cidr = format!("{}/30", plan.node_ip);
        let via = plan.node_ip.to_string();
        ip(&["addr", "add", &host_cidr, "dev", &plan.host_interface])?;
        ip(&["link", "set", &plan.host_interface, "up"])?;
        sandbox.run("ip", &["link", "set", "lo", "up"])?;
        sandbox.run("ip", &["addr", "add", &node_cidr, "dev", "eth0"])?;
        sandbox.run("ip", &["link", "set", "eth0", "up"])?;
        ip(&["route", "add", &plan.pod_cidr, "via", &via])?;
        ip(&["route", "add", &plan.service_cidr, "via", &via])?;
        sandbox.run("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
        Ok(plan)
    }

    /// The bridge CNI configuration list for containerd: Pods on a bridge
    /// `cni0` inside the node, addresses from `host-local` (its records in
    /// `ipam_dir`), the bridge as their gateway. No masquerading: nothing
    /// a Pod talks to is beyond the machine.
    pub fn cni_config(&self, ipam_dir: &Path) -> String {
        let gateway = Ipv4Addr::new(10, 252, self.slot, 1);
        json!({
            "cniVersion": "1.0.0",
            "name": "bosun-testenv",
            "plugins": [{
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": self.pod_cidr, "gateway": gateway.to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir,
                },
            }],
        })
        .to_string()
    }
}

/// `ip …` on the machine.
fn ip(args: &[&str]) -> Result<String, NodeError> {
    let mut command = std::process::Command::new("ip");
    command.args(args).env("PATH", super::sandbox::SYSTEM_PATH);
    super::sandbox::output(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_gives_ranges_that_do_not_overlap() {
        let plan = NetworkPlan::for_slot(7);
        assert_eq!(plan.host_interface, "bosun7");
        assert_eq!(plan.host_ip.to_string(), "10.251.7.1");
        assert_eq!(plan.node_ip.to_string(), "10.251.7.2");
        assert_eq!(plan.pod_cidr, "10.252.7.0/24");
        assert_eq!(plan.kubernetes_service_ip.to_string(), "10.253.7.1");
        let cni: serde_json::Value =
            serde_json::from_str(&plan.cni_config(Path::new("/x"))).expect("JSON");
        assert_eq!(
            cni["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.252.7.1"
        );
    }
}
