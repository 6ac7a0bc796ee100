//! `pipai keys`: API key administration, straight against the keys table (run with the
//! deployment's AWS credentials and environment; locally, `. .local/env`).

use std::path::PathBuf;

use pipai_service::model::{ApiKeyRecord, KeyStatus};
use pipai_service::ports::KeyStore;
use pipai_service::secrets::new_key_pair;
use pipai_service::{KeyId, UserId};

use crate::error::CliError;

/// Create, list and disable API keys (admin).
///
/// Needs the deployment's environment: API_KEYS_TABLE (and the other table names),
/// API_KEY_MASTER_KEY_PARAM (the SSM parameter holding the key-encryption key) and AWS
/// credentials. Locally `. .local/env` sets them all. Secrets are stored encrypted under the
/// master key and shown once, at creation.
///
///   pipai keys create --user alice --label "research bot"
///   pipai keys list
///   pipai keys disable pk_0123456789abcdef
#[derive(clap::Subcommand)]
#[command(verbatim_doc_comment)]
pub enum KeysCommand {
    /// Create a key for a user; prints the key id and its secret (shown only now).
    Create {
        #[arg(long)]
        user: UserId,
        #[arg(long, default_value = "")]
        label: String,
        /// Also write PIPAI_API_KEY / PIPAI_API_SECRET lines to this file (for scripts).
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// List keys (never their secrets).
    List,
    /// Disable a key: requests signed with it get 401 from then on.
    Disable { key_id: KeyId },
    /// Store known `key:secret` pairs (comma separated) for a user, e.g. from PIPAI_LOCAL_KEYS.
    Import {
        #[arg(long)]
        user: UserId,
        pairs: String,
    },
}

fn store_err(e: impl std::fmt::Display) -> CliError {
    CliError::Network(e.to_string())
}

pub fn run(cmd: KeysCommand) -> Result<(), CliError> {
    let rt = tokio::runtime::Runtime::new().map_err(store_err)?;
    rt.block_on(async move {
        let sdk = pipai_aws::load_sdk_config().await;
        let store = pipai_aws::DynamoStore::from_env(&sdk).map_err(|e| CliError::Config(e.to_string()))?;
        let now = pipai_service::clock::now_ms();
        match cmd {
            KeysCommand::Create { user, label, save } => {
                let master = pipai_aws::load_master_key(&sdk).await.map_err(|e| CliError::Config(e.to_string()))?;
                let (key_id, secret) = new_key_pair();
                let record = ApiKeyRecord {
                    secret_ciphertext: master.encrypt_secret(key_id.as_str(), &secret),
                    key_id: key_id.clone(),
                    user_id: user.clone(),
                    status: KeyStatus::Active,
                    created_at_ms: now,
                    label,
                };
                if !store.put_key(&record).await.map_err(store_err)? {
                    return Err(CliError::Network(format!("key id {key_id} exists; run again")));
                }
                println!("key for {user}:\n  PIPAI_API_KEY={key_id}\n  PIPAI_API_SECRET={secret}\n(the secret is not shown again)");
                if let Some(path) = save {
                    let text = format!("PIPAI_API_KEY={key_id}\nPIPAI_API_SECRET={secret}\n");
                    std::fs::write(&path, text).map_err(CliError::io(&path))?;
                }
                Ok(())
            }
            KeysCommand::List => {
                for k in store.list_keys().await.map_err(store_err)? {
                    let status = if k.status == KeyStatus::Active { "active" } else { "disabled" };
                    println!("{}  {:<8}  {:<16}  created {}  {}", k.key_id, status, k.user_id, pipai_engine::time::iso(k.created_at_ms), k.label);
                }
                Ok(())
            }
            KeysCommand::Disable { key_id } => {
                if store.set_key_status(&key_id, KeyStatus::Disabled).await.map_err(store_err)? {
                    println!("{key_id} disabled");
                    Ok(())
                } else {
                    Err(CliError::Config(format!("no key {key_id}")))
                }
            }
            KeysCommand::Import { user, pairs } => {
                let master = pipai_aws::load_master_key(&sdk).await.map_err(|e| CliError::Config(e.to_string()))?;
                for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (key_id, secret) = pair
                        .split_once(':')
                        .filter(|(_, s)| !s.is_empty())
                        .ok_or_else(|| CliError::Config(format!("{pair:?} is not key:secret")))?;
                    let key_id: KeyId = key_id.parse().map_err(|e| CliError::Config(format!("{pair:?}: {e}")))?;
                    let record = ApiKeyRecord {
                        key_id: key_id.clone(),
                        user_id: user.clone(),
                        secret_ciphertext: master.encrypt_secret(key_id.as_str(), secret),
                        status: KeyStatus::Active,
                        created_at_ms: now,
                        label: "imported".into(),
                    };
                    let created = store.put_key(&record).await.map_err(store_err)?;
                    println!("{key_id}: {}", if created { "created" } else { "already present, left as it is" });
                }
                Ok(())
            }
        }
    })
}
