//! The module's outbound HTTP, kept across its calls.
//!
//! A [`crate::http::Outbound`] carries the module's connection pool, so
//! building one per call would open fresh connections on every reconcile.
//! The controller keeps one and hands the same to every call — concurrent
//! ones included: the pool hands each connection to one request at a time,
//! and each call's budget is its own (made with the call's sandbox). It is
//! built anew exactly when what it was built from changes: the module's
//! load (a new version swapped in), its HTTP grant or its HTTP limits. The
//! old one, and its idle connections, go as soon as no call holds it, and
//! the current one goes with the controller.

use std::sync::{Arc, Mutex, PoisonError};

use super::ControllerSettings;
use crate::engine::Module;
use crate::grants::HttpGrant;
use crate::http::{Environment, HttpLimits, Outbound};

/// One module's current [`Outbound`], and what it was built from.
pub(super) struct ModuleOutbound {
    env: Environment,
    current: Mutex<Current>,
}

struct Current {
    module: Module,
    grants: Vec<HttpGrant>,
    limits: HttpLimits,
    /// None: the module declares no origin, so it may reach none.
    outbound: Option<Arc<Outbound>>,
}

impl Current {
    fn build(module: &Module, settings: &ControllerSettings, env: &Environment) -> Self {
        Current {
            module: module.clone(),
            grants: settings.http.clone(),
            limits: settings.limits.http,
            outbound: outbound(module, settings, env),
        }
    }

    fn built_for(&self, module: &Module, settings: &ControllerSettings) -> bool {
        self.module.is_same_load(module)
            && self.grants == settings.http
            && self.limits == settings.limits.http
    }
}

fn outbound(
    module: &Module,
    settings: &ControllerSettings,
    env: &Environment,
) -> Option<Arc<Outbound>> {
    (!module.meta().http_origins.is_empty()).then(|| {
        Outbound::new(
            module.meta(),
            &settings.http,
            settings.limits.http,
            env.clone(),
        )
    })
}

impl ModuleOutbound {
    /// The outbound HTTP of `module` under `settings`.
    pub fn new(module: &Module, settings: &ControllerSettings, env: Environment) -> Self {
        ModuleOutbound {
            current: Mutex::new(Current::build(module, settings, &env)),
            env,
        }
    }

    /// After a swap: `module` under `settings` is what runs from now on.
    /// A new pool when the load, the grant or the limits changed; the same
    /// one otherwise (a change of settings JSON or concurrency keeps it).
    pub fn update(&self, module: &Module, settings: &ControllerSettings) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.built_for(module, settings) {
            return;
        }
        let reason = if !current.module.is_same_load(module) {
            "a new load of the module"
        } else if current.grants != settings.http {
            "a new HTTP grant"
        } else {
            "new HTTP limits"
        };
        let replaced =
            std::mem::replace(&mut *current, Current::build(module, settings, &self.env));
        let reaches = replaced.outbound.is_some() || current.outbound.is_some();
        drop(current);
        // The old pool, if no call holds it any more: its idle connections
        // close here, outside the lock.
        drop(replaced);
        if reaches {
            tracing::info!(module = %module.meta().name, version = %module.meta().version, reason, "outbound HTTP: a new connection pool; the old one closes once its calls end");
        }
    }

    /// What a call running `module` under `settings` may reach: the shared
    /// outbound when those are what runs now. A call that read them just
    /// before a swap gets one of its own, as they were — never the pool of
    /// another version or grant, and without replacing the current one.
    pub fn for_call(
        &self,
        module: &Module,
        settings: &ControllerSettings,
    ) -> Option<Arc<Outbound>> {
        {
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            if current.built_for(module, settings) {
                return current.outbound.clone();
            }
        }
        tracing::debug!(module = %module.meta().name, "a call that began across a swap: outbound HTTP of its own");
        outbound(module, settings, &self.env)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::origin::Origin;

    static ENGINE: LazyLock<Engine> =
        LazyLock::new(|| Engine::new(EngineConfig::default()).expect("engine"));

    const ORIGIN: &str = "http://127.0.0.1:1";

    /// A fresh load of misbehave declaring `origins`.
    fn load(origins: &[&str]) -> Module {
        let path = bosun_testenv::guests::misbehave_reaching(origins).expect("guest builds");
        ENGINE.load_file(&path).expect("loads")
    }

    fn granted(origins: &[&str]) -> ControllerSettings {
        ControllerSettings {
            http: origins
                .iter()
                .map(|o| HttpGrant {
                    origin: Origin::parse(o).unwrap(),
                    credentials: None,
                    ca_bundle: None,
                    methods: Vec::new(),
                })
                .collect(),
            ..ControllerSettings::default()
        }
    }

    fn same(a: &Option<Arc<Outbound>>, b: &Option<Arc<Outbound>>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    #[test]
    fn every_call_gets_the_same_outbound_until_the_load_grant_or_limits_change() {
        let module = load(&[ORIGIN]);
        let settings = granted(&[ORIGIN]);
        let outbound = ModuleOutbound::new(&module, &settings, Environment::default());
        let first = outbound.for_call(&module, &settings);
        assert!(first.is_some());
        // From other threads, as concurrent reconciles ask.
        let handed: Vec<_> = std::thread::scope(|scope| {
            let asks: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| outbound.for_call(&module, &settings)))
                .collect();
            asks.into_iter().map(|a| a.join().unwrap()).collect()
        });
        assert!(handed.iter().all(|h| same(h, &first)));

        // Settings that do not touch HTTP keep the pool.
        let mut other = settings.clone();
        other.settings = Some(r#"{"x":1}"#.into());
        other.queue.concurrency = 9;
        outbound.update(&module, &other);
        assert!(same(&outbound.for_call(&module, &other), &first));

        // A new grant, new limits, a new load: a new pool each time.
        let mut regranted = granted(&[ORIGIN, "http://127.0.0.1:2"]);
        regranted.limits = other.limits;
        outbound.update(&module, &regranted);
        let second = outbound.for_call(&module, &regranted);
        assert!(second.is_some() && !same(&second, &first));

        let mut limited = regranted.clone();
        limited.limits.http.requests = 1;
        outbound.update(&module, &limited);
        let third = outbound.for_call(&module, &limited);
        assert!(third.is_some() && !same(&third, &second));

        let reloaded = load(&[ORIGIN]);
        assert_eq!(reloaded.digest(), module.digest(), "the same bytes");
        outbound.update(&reloaded, &limited);
        let fourth = outbound.for_call(&reloaded, &limited);
        assert!(fourth.is_some() && !same(&fourth, &third));
        assert!(same(&outbound.for_call(&reloaded, &limited), &fourth));
    }

    #[test]
    fn a_call_from_before_a_swap_neither_gets_nor_replaces_the_new_pool() {
        let old = load(&[ORIGIN]);
        let settings = granted(&[ORIGIN]);
        let outbound = ModuleOutbound::new(&old, &settings, Environment::default());
        let new = load(&[ORIGIN]);
        outbound.update(&new, &settings);
        let current = outbound.for_call(&new, &settings);

        let straggler = outbound.for_call(&old, &settings);
        assert!(straggler.is_some() && !same(&straggler, &current));
        let under_old_grant = outbound.for_call(&new, &granted(&[]));
        assert!(under_old_grant.is_some() && !same(&under_old_grant, &current));
        assert!(
            same(&outbound.for_call(&new, &settings), &current),
            "the current pool stays"
        );
    }

    #[test]
    fn a_module_that_declares_no_origin_reaches_none() {
        let module = load(&[]);
        let settings = granted(&[ORIGIN]);
        let outbound = ModuleOutbound::new(&module, &settings, Environment::default());
        assert!(outbound.for_call(&module, &settings).is_none());
    }
}
