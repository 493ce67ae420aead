//! `probe` command component: one small, obvious action per subcommand, so the host's
//! sandbox and scheduler tests can see what a step is allowed to do. Exit status 0 means the
//! attempt succeeded, 3 that it was denied (with one stderr line `denied: <reason>`), 2 a
//! usage mistake; `write`, `copy` and `fail` use 1 and the given code as documented below.
//! Depends on nothing but `std`, and must stay that way: what it does is what std does.
//!
//! ```text
//! noop                      do nothing
//! echo <words...>           print the words joined by spaces
//! write <path> <text>       create a file holding the text (exit 1 on error)
//! tree <dir> <name> <text>  create the folder <dir> holding the file <name> with the text
//! copy <from> <to>          copy a file (exit 1 on error)
//! read <path>               print a file
//! ls <dir>                  print a directory's entries, one per line, sorted
//! symlink-out <dir> <target> create <dir>/escape -> <target>, then print <dir>/escape
//! connect <host:port>       open a TCP connection, print `connected`
//! resolve <hostname>        look a name up, print each address
//! env <NAME>                print an environment variable
//! env-count                 print how many environment variables are visible
//! spin                      loop forever on the CPU
//! alloc <MiB>               allocate and touch that much memory, print `allocated N MiB`
//! membomb                   allocate and touch 1 MiB chunks forever
//! trap                      panic with `probe: deliberate trap` (a trap on wasm)
//! sleep <ms>                sleep
//! tick <n> <ms>             print `tick 1` ... `tick <n>`, one line every <ms> milliseconds
//! fail <code>               print `failing with <code>` to stderr and exit with the code
//! flood <bytes>             write exactly that many bytes to stdout in 4 KiB writes:
//!                           lines of `x` ending in a newline
//! hold-files <dir> <n>      create the folder and n files in it, keep every one open,
//!                           print `held <n>` (exit 1 naming the file that failed)
//! fill <path> <bytes>       write that many bytes of `x` to a new file in 64 KiB writes,
//!                           print `wrote <bytes>` (exit 1 on error)
//! sparse <path> <offset>    write one byte at the offset of a new file (exit 1 on error)
//! grow <path> <bytes>       create a file and set its length (exit 1 on error)
//! stash <text>              keep the text in a static buffer (zero when the instance
//!                           starts), print `stashed`
//! peek                      print what that buffer holds, or `empty` when it is all zero
//! ```

#![forbid(unsafe_code)]

use std::fs;
use std::hint::black_box;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

const MIB: usize = 1024 * 1024;
const DENIED: u8 = 3;
const USAGE: u8 = 2;

/// What `stash` keeps and `peek` reads: in the data segment's zeroed part, which a fresh
/// instance starts with all zero whatever an earlier instance left there.
static STASH: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["noop"] => ExitCode::SUCCESS,
        ["echo", words @ ..] => {
            println!("{}", words.join(" "));
            ExitCode::SUCCESS
        }
        ["write", path, text] => or_fail(fs::write(path, text), || format!("cannot write {path}")),
        ["tree", dir, name, text] => or_fail(
            fs::create_dir_all(dir).and_then(|()| fs::write(Path::new(dir).join(name), text)),
            || format!("cannot write {dir}/{name}"),
        ),
        ["copy", from, to] => or_fail(fs::copy(from, to).map(drop), || {
            format!("cannot copy {from} to {to}")
        }),
        ["read", path] => match fs::read(path) {
            Ok(bytes) => print_bytes(&bytes),
            Err(err) => denied(format!("cannot read {path}: {err}")),
        },
        ["ls", dir] => list(dir),
        ["symlink-out", dir, target] => symlink_out(dir, target),
        ["connect", address] => match TcpStream::connect(address) {
            Ok(_) => {
                println!("connected");
                ExitCode::SUCCESS
            }
            Err(err) => denied(format!("cannot connect to {address}: {err}")),
        },
        ["resolve", host] => match (*host, 0).to_socket_addrs() {
            Ok(addresses) => {
                for address in addresses {
                    println!("{}", address.ip());
                }
                ExitCode::SUCCESS
            }
            Err(err) => denied(format!("cannot resolve {host}: {err}")),
        },
        ["env", name] => match std::env::var_os(name) {
            Some(value) => {
                println!("{}", value.to_string_lossy());
                ExitCode::SUCCESS
            }
            None => denied(format!("{name} is not visible")),
        },
        ["env-count"] => {
            println!("{}", std::env::vars_os().count());
            ExitCode::SUCCESS
        }
        ["spin"] => spin(),
        ["alloc", mib] => match mib.parse() {
            Ok(mib) => alloc(mib),
            Err(_) => usage(&format!("alloc: '{mib}' is not a whole number of MiB")),
        },
        ["membomb"] => membomb(),
        ["stash", text] => {
            for (slot, byte) in STASH.iter().zip(text.bytes()) {
                slot.store(byte, Ordering::Relaxed);
            }
            println!("stashed");
            ExitCode::SUCCESS
        }
        ["peek"] => {
            let held: Vec<u8> = STASH
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .take_while(|&b| b != 0)
                .collect();
            if held.is_empty() {
                println!("empty");
            } else {
                println!("{}", String::from_utf8_lossy(&held));
            }
            ExitCode::SUCCESS
        }
        ["trap"] => panic!("probe: deliberate trap"),
        ["sleep", ms] => match ms.parse() {
            Ok(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                ExitCode::SUCCESS
            }
            Err(_) => usage(&format!(
                "sleep: '{ms}' is not a whole number of milliseconds"
            )),
        },
        ["tick", n, ms] => match (n.parse::<u32>(), ms.parse()) {
            (Ok(n), Ok(ms)) => {
                for i in 1..=n {
                    println!("tick {i}");
                    if i < n {
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                }
                ExitCode::SUCCESS
            }
            _ => usage(&format!(
                "tick: expected a count and milliseconds between lines, got '{n}' and '{ms}'"
            )),
        },
        ["fail", code] => match code.parse::<i32>() {
            Ok(code) => {
                eprintln!("failing with {code}");
                std::process::exit(code)
            }
            Err(_) => usage(&format!("fail: '{code}' is not an exit code")),
        },
        ["flood", bytes] => match bytes.parse() {
            Ok(bytes) => flood(bytes),
            Err(_) => usage(&format!("flood: '{bytes}' is not a whole number of bytes")),
        },
        ["hold-files", dir, n] => match n.parse() {
            Ok(n) => hold_files(dir, n),
            Err(_) => usage("hold-files takes a count"),
        },
        ["fill", path, bytes] => match bytes.parse() {
            Ok(bytes) => fill(path, bytes),
            Err(_) => usage("fill takes a number of bytes"),
        },
        ["sparse", path, offset] => match offset.parse() {
            Ok(offset) => or_fail(sparse(path, offset), || format!("cannot write {path}")),
            Err(_) => usage("sparse takes an offset"),
        },
        ["grow", path, bytes] => match bytes.parse() {
            Ok(bytes) => or_fail(
                fs::File::create(path).and_then(|f| f.set_len(bytes)),
                || format!("cannot grow {path}"),
            ),
            Err(_) => usage("grow takes a number of bytes"),
        },
        _ => usage("unknown subcommand or wrong number of arguments"),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("probe: {problem}; see the list at the top of probe/src/main.rs");
    ExitCode::from(USAGE)
}

fn denied(reason: String) -> ExitCode {
    eprintln!("denied: {reason}");
    ExitCode::from(DENIED)
}

fn or_fail(result: io::Result<()>, what: impl FnOnce() -> String) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("probe: {}: {err}", what());
            ExitCode::FAILURE
        }
    }
}

fn print_bytes(bytes: &[u8]) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => denied(format!("cannot write to stdout: {err}")),
    }
}

fn list(dir: &str) -> ExitCode {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => return denied(format!("cannot list {dir}: {err}")),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
            Err(err) => return denied(format!("cannot list {dir}: {err}")),
        }
    }
    names.sort();
    for name in names {
        println!("{name}");
    }
    ExitCode::SUCCESS
}

fn symlink_out(dir: &str, target: &str) -> ExitCode {
    let link = Path::new(dir).join("escape");
    if let Err(err) = symlink(target, &link) {
        return denied(format!("cannot create {}: {err}", link.display()));
    }
    match fs::read(&link) {
        Ok(bytes) => print_bytes(&bytes),
        Err(err) => denied(format!("cannot read {}: {err}", link.display())),
    }
}

/// `std::fs::soft_link` is deprecated in favour of per-platform functions, but WASI's
/// (`std::os::wasi::fs::symlink_path`) is not stable yet, and this one works everywhere.
#[allow(deprecated)]
fn symlink(target: &str, link: &Path) -> io::Result<()> {
    fs::soft_link(target, link)
}

fn spin() -> ExitCode {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter).wrapping_add(1);
    }
}

fn alloc(mib: usize) -> ExitCode {
    let Some(bytes) = mib.checked_mul(MIB) else {
        return denied(format!("cannot allocate {mib} MiB: too large"));
    };
    let mut block: Vec<u8> = Vec::new();
    if let Err(err) = block.try_reserve_exact(bytes) {
        return denied(format!("cannot allocate {mib} MiB: {err}"));
    }
    // Writing every byte makes the host commit every page.
    block.resize(bytes, 1);
    black_box(&mut block);
    println!("allocated {mib} MiB");
    ExitCode::SUCCESS
}

fn membomb() -> ExitCode {
    let mut hoard: Vec<Box<[u8]>> = Vec::new();
    loop {
        let mut chunk = vec![1u8; MIB].into_boxed_slice();
        black_box(&mut chunk);
        hoard.push(chunk);
        black_box(&mut hoard);
    }
}

fn flood(bytes: usize) -> ExitCode {
    const WRITE: usize = 4096;
    let mut chunk = vec![b'x'; WRITE];
    chunk[WRITE - 1] = b'\n';
    let mut stdout = io::stdout().lock();
    let mut left = bytes;
    while left > 0 {
        let size = left.min(WRITE);
        let result = if size == WRITE {
            stdout.write_all(&chunk)
        } else {
            let mut last = vec![b'x'; size];
            last[size - 1] = b'\n';
            stdout.write_all(&last)
        };
        if let Err(err) = result {
            return denied(format!("cannot write to stdout: {err}"));
        }
        left -= size;
    }
    match stdout.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => denied(format!("cannot write to stdout: {err}")),
    }
}

fn hold_files(dir: &str, n: usize) -> ExitCode {
    if let Err(err) = fs::create_dir_all(dir) {
        eprintln!("probe: cannot create {dir}: {err}");
        return ExitCode::FAILURE;
    }
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let path = Path::new(dir).join(format!("f{i}"));
        match fs::File::create(&path) {
            Ok(file) => held.push(file),
            Err(err) => {
                eprintln!("probe: cannot open file {i}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("held {}", held.len());
    black_box(&held);
    ExitCode::SUCCESS
}

fn fill(path: &str, bytes: u64) -> ExitCode {
    let chunk = vec![b'x'; 64 * 1024];
    let result = fs::File::create(path).and_then(|mut file| {
        let mut left = bytes;
        while left > 0 {
            let size = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..size])?;
            left -= size as u64;
        }
        file.flush()
    });
    match result {
        Ok(()) => {
            println!("wrote {bytes}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("probe: cannot write {path}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn sparse(path: &str, offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut file = fs::File::create(path)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(b"x")
}
