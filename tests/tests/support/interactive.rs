//! A client program driven line by line: commands go to its stdin, and its stdout and
//! stderr arrive merged as one stream of lines (zkCli.sh and cli_mt print results and
//! errors on different streams, and the order between them matters).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any single expected line may take to appear.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

pub(crate) struct Interactive {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<(Mutex<Lines>, Condvar)>,
    /// Lines before this index have been handed out by `wait_for`.
    consumed: usize,
}

impl Interactive {
    pub(crate) fn spawn(program: &str, args: &[&str]) -> Interactive {
        // `exec` keeps one process, so killing the child kills the client itself.
        let mut child = Command::new("bash")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let shared: Arc<(Mutex<Lines>, Condvar)> = Arc::default();
        let reader = shared.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = r.read_until(b'\n', &mut buf).unwrap_or(0);
                let (lock, cv) = &*reader;
                let mut g = lock.lock().unwrap();
                if n == 0 {
                    g.closed = true;
                    cv.notify_all();
                    return;
                }
                let line = String::from_utf8_lossy(&buf);
                g.lines.push(line.trim_end_matches(['\n', '\r']).to_owned());
                cv.notify_all();
            }
        });
        Interactive {
            name: program.to_owned(),
            stdin: child.stdin.take(),
            child,
            shared,
            consumed: 0,
        }
    }

    pub(crate) fn send(&mut self, line: &str) {
        self.send_lines(&[line]);
    }

    /// Writes the lines in one write(2): cli_mt loses the tail of a line when a read
    /// returns a complete line followed by part of the next.
    pub(crate) fn send_lines(&mut self, lines: &[&str]) {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}\n{}", self.name, self.transcript()));
    }

    /// Every line the program has printed so far.
    pub(crate) fn all_lines(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().lines.clone()
    }

    pub(crate) fn transcript(&self) -> String {
        self.all_lines().join("\n")
    }

    /// Waits for the next line (after those already handed out) matching `pred`, and
    /// returns the lines up to and including it. Panics with the transcript on timeout.
    pub(crate) fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().unwrap();
        loop {
            if let Some(i) = g.lines[self.consumed..].iter().position(|l| pred(l)) {
                let end = self.consumed + i + 1;
                let out = g.lines[self.consumed..end].to_vec();
                self.consumed = end;
                return out;
            }
            let now = Instant::now();
            if g.closed || now >= deadline {
                let all = g.lines.join("\n");
                drop(g);
                panic!(
                    "{}: no line {what} ({})\ntranscript:\n{all}",
                    self.name,
                    if now >= deadline {
                        "timed out"
                    } else {
                        "program exited"
                    }
                );
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits until the whole transcript so far satisfies `pred`.
    pub(crate) fn wait_until(&mut self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().unwrap();
        loop {
            if pred(&g.lines) {
                return;
            }
            let now = Instant::now();
            if g.closed || now >= deadline {
                let all = g.lines.join("\n");
                drop(g);
                panic!("{}: never saw {what}\ntranscript:\n{all}", self.name);
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Closes stdin and waits for the program to exit; returns the whole transcript.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.stdin.take();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread sees EOF once the process is gone.
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().unwrap();
        while !g.closed {
            let (ng, t) = cv.wait_timeout(g, Duration::from_secs(5)).unwrap();
            g = ng;
            if t.timed_out() {
                break;
            }
        }
        g.lines.clone()
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
