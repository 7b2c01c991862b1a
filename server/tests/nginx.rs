//! `deploy/nginx/cryptonas-proxy.conf` in front of two server processes, all on 127.0.0.1: Debian's
//! nginx terminates TLS with a self-signed certificate made at test time, 32 concurrent sessions
//! are spread over both replicas and all bit-exact, then one replica is killed mid-run: its
//! sessions fail, the client starts them again, nginx routes them to the survivor, and every
//! inference ends bit-exact.
//!
//! The native client speaks `ws://` only, so it reaches nginx through socat, which opens a TLS
//! connection per client connection and verifies nginx's certificate against the test's CA; the
//! hop into nginx is therefore `wss://`. Needs `nginx`, `socat` and `openssl` (scripts/setup.sh
//! installs them); without them the test says so and passes only if
//! `CRYPTONAS_REQUIRE_NGINX` is unset (scripts/test.sh sets it).

use cryptonas_client::{classify, NetworkProfile};
use cryptonas_protocol::{testing::tiny_model, ClientInput};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Children (by id) and the nginx prefix, stopped on drop; then the test directory is removed.
struct Procs {
    children: Vec<Child>,
    nginx: Option<(PathBuf, PathBuf)>,
    dir: PathBuf,
}

impl Drop for Procs {
    fn drop(&mut self) {
        if let Some((prefix, conf)) = &self.nginx {
            let _ = Command::new("nginx")
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(conf)
                .args(["-e", "stderr", "-s", "stop"])
                .stderr(Stdio::null())
                .status();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a replica on a port of its choosing; returns the child and its address.
fn replica(models: &Path, www: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cryptonas-server"))
        .args(["--bind", "127.0.0.1:0", "--sessions-per-minute", "0"])
        .args([
            "--max-sessions-per-address",
            "64",
            "--trusted-proxies",
            "127.0.0.1",
        ])
        .args(["--drain-secs", "1"])
        .arg("--models")
        .arg(models)
        .arg("--www")
        .arg(www)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let addr = loop {
        let line = lines.next().expect("replica exited").unwrap();
        if let Some(rest) = line.strip_prefix("CryptoNAS server ready: http://") {
            break rest.trim_end_matches('/').to_string();
        }
    };
    // Keep draining stdout so the replica never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

async fn started(replica: &str) -> u64 {
    let (_, body) = get(replica, "/metrics").await.unwrap();
    body.lines()
        .find_map(|l| {
            l.strip_prefix("cryptonas_sessions_started_total ")?
                .parse()
                .ok()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_nginx_with_tls() {
    let missing: Vec<_> = ["nginx", "socat", "openssl"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CRYPTONAS_REQUIRE_NGINX").is_none(),
            "missing {missing:?} (scripts/setup.sh installs them)"
        );
        eprintln!("SKIPPED: the nginx deployment test needs {missing:?}");
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "cryptonas-nginx-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let (json, weights, model, images) = tiny_model(1, 8, 31);
    std::fs::write(models.join("tiny.json"), json).unwrap();
    std::fs::write(models.join("tiny.safetensors"), weights).unwrap();
    // A self-signed certificate for 127.0.0.1, made now.
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl req failed");

    let mut procs = Procs {
        children: Vec::new(),
        nginx: None,
        dir: dir.clone(),
    };
    let (a, a_addr) = replica(&models, &dir);
    let (b, b_addr) = replica(&models, &dir);
    procs.children.push(a);
    procs.children.push(b);

    let tls_port = free_port();
    let proxy_conf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/cryptonas-proxy.conf");
    let conf = format!(
        "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log {dir}/logs/access.log;\n\
           client_body_temp_path {dir}/tmp/body; proxy_temp_path {dir}/tmp/proxy;\n\
           fastcgi_temp_path {dir}/tmp/fcgi; uwsgi_temp_path {dir}/tmp/uwsgi; scgi_temp_path {dir}/tmp/scgi;\n\
           upstream cryptonas {{\n    server {a_addr} max_fails=1 fail_timeout=30s;\n    server {b_addr} max_fails=1 fail_timeout=30s;\n  }}\n\
           server {{\n    listen 127.0.0.1:{tls_port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             include {proxy};\n  }}\n}}\n",
        dir = dir.display(),
        cert = cert.display(),
        key = key.display(),
        proxy = proxy_conf.canonicalize().unwrap().display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    // Workers may run as an unprivileged user: let them use the temp directories.
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("a+rwX")
        .arg(&dir)
        .status();
    let test = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-e", "stderr", "-t", "-q"])
        .status()
        .unwrap();
    assert!(test.success(), "nginx -t rejected the configuration");
    let status = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-e", "stderr"])
        .status()
        .unwrap();
    assert!(status.success(), "nginx did not start");
    procs.nginx = Some((dir.clone(), conf_path.clone()));

    // The client's TLS hop: socat, verifying nginx's certificate.
    let plain_port = free_port();
    let socat = Command::new("socat")
        .arg(format!(
            "TCP-LISTEN:{plain_port},bind=127.0.0.1,fork,reuseaddr"
        ))
        .arg(format!(
            "OPENSSL:127.0.0.1:{tls_port},cafile={},verify=1",
            cert.display()
        ))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    procs.children.push(socat);
    let front = format!("127.0.0.1:{plain_port}");
    let t0 = Instant::now();
    loop {
        if let Some((200, body)) = get(&front, "/api/models").await {
            assert!(body.contains("\"name\":\"tiny\""), "{body}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "nginx never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The probes stay private behind the proxy.
    assert_eq!(get(&front, "/metrics").await.unwrap().0, 404);

    // 32 concurrent sessions over TLS, spread over both replicas, all bit-exact.
    let url = format!("http://{front}");
    let run = |x: Vec<f32>, profile: NetworkProfile| {
        let url = url.clone();
        tokio::spawn(
            async move { classify(&url, "tiny", ClientInput::Normalised(x), profile).await },
        )
    };
    let tasks: Vec<_> = (0..32)
        .map(|i| run(images[i % images.len()].clone(), NetworkProfile::LOOPBACK))
        .collect();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(
            r.outcome.logits_ring,
            model.fixed().forward(&r.outcome.input_ring).unwrap()
        );
    }
    let (on_a, on_b) = (started(&a_addr).await, started(&b_addr).await);
    assert_eq!(on_a + on_b, 32);
    assert!(on_a >= 8 && on_b >= 8, "not spread: {on_a} + {on_b}");

    // Kill replica A while 16 slow sessions run; every inference is retried until it completes.
    let slow = NetworkProfile {
        rtt: Duration::from_millis(60),
        bits_per_second: 0,
    };
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            let x = images[i % images.len()].clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for _ in 0..3 {
                    match classify(&url, "tiny", ClientInput::Normalised(x.clone()), slow).await {
                        Ok(r) => return (r, errors),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                panic!("three attempts failed: {errors:?}");
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    procs.children[0].kill().unwrap();
    let _ = procs.children[0].wait();
    let mut failed = Vec::new();
    for t in tasks {
        let (r, errors) = t.await.unwrap();
        assert_eq!(
            r.outcome.logits_ring,
            model.fixed().forward(&r.outcome.input_ring).unwrap()
        );
        failed.extend(errors);
    }
    eprintln!(
        "killed replica A mid-run: {} of 16 sessions failed once and completed on retry: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        !failed.is_empty(),
        "no session was running on the killed replica"
    );
    assert!(failed.len() <= 16);
}
