//! The behaviour cases every HTTP/1 proxy here passes
//! (`proxy_test_cases::http1`), run against the gateway on both engines:
//! one service in front of the case's upstream. The cases' flags become
//! what the gateway reads: the proxy's timeouts are the service's keys,
//! the server's flags stay flags.

mod support;

use futures_util::future::BoxFuture;
use serving::Launched;
use support::gateway_on_with;

/// The gateway on `engine`, one service sending everything to `upstream`.
async fn gateway(engine: &str, upstream: &str, extra: &[&str]) -> Launched {
    let mut service_keys = String::new();
    let mut flags = Vec::new();
    let mut extra = extra.iter();
    while let Some(flag) = extra.next() {
        let value = extra.next().expect("every flag of the cases has a value");
        let seconds = || format!("\"{}ms\"", value.parse::<f64>().unwrap() * 1000.0);
        match *flag {
            "--timeout" => service_keys += &format!("timeout = {}\n", seconds()),
            "--client-body-timeout" => {
                service_keys += &format!("client_body_timeout = {}\n", seconds())
            }
            _ => flags.extend([*flag, *value]),
        }
    }
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[[services]]\nname = \"all\"\npath_prefix = \"/\"\n\
         upstreams = [\"{upstream}\"]\n{service_keys}"
    );
    gateway_on_with(engine, &config, &flags).await
}

fn on_hyper<'a>(upstream: &'a str, extra: &'a [&'a str]) -> BoxFuture<'a, Launched> {
    Box::pin(gateway("hyper", upstream, extra))
}

fn on_fast<'a>(upstream: &'a str, extra: &'a [&'a str]) -> BoxFuture<'a, Launched> {
    Box::pin(gateway("fast", upstream, extra))
}

mod hyper_engine {
    proxy_test_cases::http1_behaviours!(super::on_hyper);
}

mod fast_engine {
    proxy_test_cases::http1_behaviours!(super::on_fast);
}
