//! The environment's PKI, generated with rcgen: one CA that signs the
//! apiserver's serving certificate, the admin client certificate and, with
//! a node, one client certificate per component (kubeadm's identities),
//! plus the service-account signing key.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::Error;

/// Paths of the PEM files written by [`generate`].
#[derive(Debug, Clone)]
pub(crate) struct CertPaths {
    pub ca_cert: PathBuf,
    /// The CA's key: kube-controller-manager signs CSRs with it.
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_public_key: PathBuf,
    pub sa_private_key: PathBuf,
    /// Each [`Identity`]'s certificate and key, by its name.
    pub clients: BTreeMap<&'static str, (PathBuf, PathBuf)>,
}

/// A client identity to issue a certificate for: what the API server
/// authenticates the holder as (CN the user, O the group).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The file stem (`<name>.crt`, `<name>.key`) and the key in
    /// [`CertPaths::clients`].
    pub name: &'static str,
    /// The user name.
    pub common_name: String,
    /// The group, if any.
    pub organization: Option<&'static str>,
}

/// Generates the PKI into `dir` (which must exist): the serving
/// certificate also names `serving_ips` (the `kubernetes` Service's
/// ClusterIP, the address the API server advertises), and each of
/// `identities` gets a client certificate.
pub(crate) fn generate(
    dir: &Path,
    serving_ips: &[IpAddr],
    identities: &[Identity],
) -> Result<CertPaths, Error> {
    let mut paths = CertPaths {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_public_key: dir.join("sa.pub"),
        sa_private_key: dir.join("sa.key"),
        clients: BTreeMap::new(),
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("bosun-testenv-ca", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    serving.subject_alt_names.extend([
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    serving
        .subject_alt_names
        .extend(serving_ips.iter().copied().map(SanType::IpAddress));
    serving.distinguished_name = name("kube-apiserver", None);
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.use_authority_key_identifier_extension = true;
    let serving_cert = serving.signed_by(&serving_key, &ca)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::default();
    admin.distinguished_name = name("bosun-testenv-admin", Some("system:masters"));
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    admin.use_authority_key_identifier_extension = true;
    let admin_cert = admin.signed_by(&admin_key, &ca)?;

    for identity in identities {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&identity.common_name, identity.organization);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &ca)?;
        let (cert_path, key_path) = (
            dir.join(format!("{}.crt", identity.name)),
            dir.join(format!("{}.key", identity.name)),
        );
        write(&cert_path, &cert.pem())?;
        write(&key_path, &key.serialize_pem())?;
        paths.clients.insert(identity.name, (cert_path, key_path));
    }

    let sa_key = KeyPair::generate()?;

    write(&paths.ca_cert, &ca_cert.pem())?;
    write(&paths.ca_key, &ca.key().serialize_pem())?;
    write(&paths.serving_cert, &serving_cert.pem())?;
    write(&paths.serving_key, &serving_key.serialize_pem())?;
    write(&paths.admin_cert, &admin_cert.pem())?;
    write(&paths.admin_key, &admin_key.serialize_pem())?;
    write(&paths.sa_public_key, &sa_key.public_key_pem())?;
    write(&paths.sa_private_key, &sa_key.serialize_pem())?;
    Ok(paths)
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(Error::io("writing certificate", path))
}
