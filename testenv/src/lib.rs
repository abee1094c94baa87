//! `bosun-testenv`: a real Kubernetes control plane for bosun's tests and demo.
//!
//! Like controller-runtime's envtest, it runs `etcd` and `kube-apiserver` (no
//! kubelet, no controller-manager, no scheduler) on free loopback ports in a
//! temporary directory, with serving certificates, a client CA, a
//! service-account key and an admin identity (`O=system:masters`) generated with
//! rcgen. [`TestEnv::start`] waits until `/readyz` is ok and hands out a
//! [`kube::Client`]; dropping the [`TestEnv`] kills both processes.
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
//! per test process. [`registry::Registry`] runs a container registry on
//! loopback the same way, for the image tests, and [`powerdns::PowerDns`] a
//! PowerDNS server with its HTTP API (queried over DNS with [`dns`]), for
//! the DNS-record operator; [`CountingProxy`] stands in front of such a
//! server and counts the connections a client opens; [`tools`] finds the
//! external programs such tests need.
//!
//! [`hostile`] generates components that are costly to compile, for the
//! tests of the compile cage.
//!
//! Without the default `harness` feature only [`assets`], [`guests`] and
//! [`hostile`] are compiled (std and sha2), which is what `xtask` depends on.

#![warn(missing_docs)]

pub mod assets;
pub mod guests;
pub mod hostile;
pub mod tools;

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
pub mod powerdns;
#[cfg(feature = "harness")]
mod process;
#[cfg(feature = "harness")]
pub mod registry;

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
