//! TLS in the binary: `https://` and `wss://` on herald's own port.
//!
//! With `HERALD_TLS_CERT` and `HERALD_TLS_KEY` (PEM files) set, the listener
//! speaks TLS (rustls; no OpenSSL). The certificate is held by a resolver
//! that SIGHUP reloads from the same files, so a renewed certificate is
//! served to new connections without a restart; a reload that fails keeps
//! the certificate in use and says why. A missing or bad file, or a key that
//! is not the certificate's, stops startup with a message naming the files.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    crypto::ring::sign::any_supported_type,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {why}; check HERALD_TLS_CERT")]
    Cert { path: PathBuf, why: String },
    #[error("cannot read the TLS key {path}: {why}; check HERALD_TLS_KEY")]
    Key { path: PathBuf, why: String },
    /// Both files read, but the key is not the certificate's: every
    /// handshake would fail.
    #[error("the TLS key {key} does not belong to the certificate {cert} (its public key differs); give the key the certificate was issued for (HERALD_TLS_CERT, HERALD_TLS_KEY)")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// The certificate and key files, and what was last loaded from them.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |why: String| TlsError::Cert {
        path: cert.to_owned(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in it".into()));
    }
    let key_err = |why: String| TlsError::Key {
        path: key.to_owned(),
        why,
    };
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(e.to_string()))?;
    let signing = any_supported_type(&der).map_err(|e| key_err(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    // A key that cannot tell its public half (none of ring's) is let through.
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })
        }
        _ => Ok(Arc::new(certified)),
    }
}

impl Certificates {
    /// Loads both files (the startup check).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, TlsError> {
        let current = load(cert, key)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again; new connections get the new certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The rustls server configuration serving these certificates.
    pub fn server_config(self: &Arc<Self>) -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Reloads the certificates on every SIGHUP, for as long as the server
/// runs. The handler is installed before this returns (SIGHUP's default
/// action would end the process), and the reloads run on a task of their own.
pub fn reload_on_sighup(certs: Arc<Certificates>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            log::warn!("cannot listen for SIGHUP; certificates will not be reloaded");
            return;
        };
        actix_web::rt::spawn(async move {
            while hangups.recv().await.is_some() {
                match certs.reload() {
                    Ok(()) => log::info!(
                        "SIGHUP: TLS certificate reloaded from {}",
                        certs.cert.display()
                    ),
                    Err(err) => {
                        log::error!("SIGHUP: {err}; still serving the previous certificate")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = certs;
}
