//! `bosun-testenv`: a real Kubernetes control plane for bosun's tests and demo.
//!
//! Like controller-runtime's envtest, it runs `etcd` and `kube-apiserver` (no
//! kubelet, no controller-manager, no scheduler) on free loopback ports in a
//! temporary directory, with serving certificates, a client CA, a
//! service-account key and an admin identity (`O=system:masters`) generated with
//! rcgen. [`TestEnv::start`] waits until `/readyz` is ok and hands out a
//! [`kube::Client`]; dropping the [`TestEnv`] kills both processes.
//!
//! A test that needs Pods to run asks for a real node beside it
//! ([`TestEnvBuilder::node`], [`node`]): kube-controller-manager and
//! kube-scheduler, and containerd (runc, the bridge CNI), the kubelet and
//! kube-proxy in a network and mount namespace and a cgroup of the node's
//! own, with the pause image and stand-ins for `busybox` and `nginx`
//! loaded; dropping it leaves the machine as it was.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bosun_testenv::Error> {
//! bosun_testenv::node::available().map_err(|e| bosun_testenv::Error::Node(Box::new(e)))?;
//! let env = bosun_testenv::TestEnv::builder()
//!     .node(bosun_testenv::node::NodeOptions::default())
//!     .start()
//!     .await?;
//! let node = env.node().expect("a node");
//! node.load_image("target/image/bosun.oci.tar".as_ref(), "ghcr.io/bosun-dev/bosun")
//!     .map_err(|e| bosun_testenv::Error::Node(Box::new(e)))?;
//! # Ok(()) }
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), bosun_testenv::Error> {
//! let env = bosun_testenv::TestEnv::start().await?;
//! env.install_crds(["examples/cnat/crd.yaml"]).await?;
//! let client = env.client();
//! # let _ = client; Ok(()) }
//! ```
//!
//! The binaries are found by [`assets::locate`]: `KUBEBUILDER_ASSETS` first,
//! else the cache filled by `cargo xtask control-plane`. Setting
//! `USE_EXISTING_CLUSTER=true` makes [`TestEnv::start`] use the cluster of the
//! current kubeconfig instead of starting one.
//!
//! [`guests`] builds the example and test reconcilers as Wasm components, once
//! per test process; [`python_guests`] the Python ones, with componentize-py
//! in a venv under the target directory; [`typescript_guests`] the
//! TypeScript one, with npm under the target directory. [`registry::Registry`] runs a container registry on
//! loopback the same way, for the image tests, and [`powerdns::PowerDns`] a
//! PowerDNS server with its HTTP API (queried over DNS with [`dns`]), for
//! the DNS-record operator; [`CountingProxy`] stands in front of such a
//! server and counts the connections a client opens; [`tools`] finds the
//! external programs such tests need.
//!
//! [`oci`] writes OCI image layouts reproducibly: `cargo xtask image`'s
//! writer, and the node's stand-ins'. [`hostile`] generates components
//! that are costly to compile, for the tests of the compile cage.
//!
//! Without the default `harness` feature only [`assets`], [`guests`],
//! [`python_guests`], [`typescript_guests`] and [`hostile`] are compiled
//! (std and sha2).

#![warn(missing_docs)]

pub mod assets;
pub mod go_component;
pub mod go_guests;
pub mod guests;
pub mod hostile;
pub mod python_guests;
mod staging;
pub mod tools;
pub mod typescript_guests;

#[cfg(feature = "harness")]
mod certs;
#[cfg(feature = "harness")]
pub mod counting_proxy;
#[cfg(feature = "harness")]
mod crds;
#[cfg(feature = "harness")]
pub mod dns;
#[cfg(feature = "harness")]
mod env;
#[cfg(feature = "harness")]
mod error;
#[cfg(feature = "harness")]
pub mod jaeger;
#[cfg(feature = "harness")]
pub mod node;
#[cfg(feature = "harness")]
pub mod oci;
#[cfg(feature = "harness")]
pub mod powerdns;
#[cfg(feature = "harness")]
mod process;
#[cfg(feature = "harness")]
pub mod registry;
#[cfg(feature = "harness")]
mod shared;

#[cfg(feature = "harness")]
pub use counting_proxy::CountingProxy;
#[cfg(feature = "harness")]
pub use crds::CrdSource;
#[cfg(feature = "harness")]
pub use env::{TestEnv, TestEnvBuilder, USE_EXISTING_CLUSTER};
#[cfg(feature = "harness")]
pub use error::{Error, NotReady, ProcessFailure};
#[cfg(feature = "harness")]
pub use powerdns::PowerDns;
#[cfg(feature = "harness")]
pub use registry::Registry;
