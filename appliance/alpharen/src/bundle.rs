//! `alpharen bundle`: the build machine's side of update bundles
//! (images/bundle.sh drives it). Making a bundle is two steps around a
//! signature made by `minisign -S`, so the secret key never passes
//! through this program and can stay on an offline machine: only the
//! small manifest travels to it, and its `.minisig` comes back.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use alpharen_update::{
    BLOCK_SIZE, BundleReader, FORMAT_VERSION, GROUP_BLOCKS, Manifest, Running, TrustedKey,
    TrustedKeys, decide, describe_part, write_bundle,
};
use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BundleCmd {
    /// Write the manifest of a bundle (to be signed with `minisign -S -m`).
    Manifest {
        #[arg(long)]
        board: String,
        #[arg(long)]
        version: String,
        /// Which build this is (commit, date); shown, never compared.
        #[arg(long, default_value = "")]
        build_id: String,
        /// The lowest running version that may install it.
        #[arg(long, default_value = "0")]
        min_from: String,
        /// A `.pub` file whose key the new system also trusts (rotation).
        #[arg(long = "add-key")]
        add_keys: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// The slot's files, in bundle order: rootfs=PATH vmlinuz=PATH ...
        #[arg(required = true)]
        parts: Vec<String>,
    },
    /// Pack a signed manifest and its parts into the bundle.
    Pack {
        #[arg(long)]
        manifest: PathBuf,
        /// The manifest's `.minisig` (minisign -S).
        #[arg(long)]
        signature: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The same NAME=PATH list as for `manifest`.
        #[arg(required = true)]
        parts: Vec<String>,
    },
    /// Check a bundle as a node would, writing its parts nowhere.
    Verify {
        /// Trusted `.pub` files, or directories of them.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// With --running: also decide as a node of this board would.
        #[arg(long, requires = "running")]
        board: Option<String>,
        #[arg(long, requires = "board")]
        running: Option<String>,
        /// The bundle, or - for stdin.
        file: PathBuf,
    },
}

pub fn run(cmd: BundleCmd) -> Result<()> {
    match cmd {
        BundleCmd::Manifest {
            board,
            version,
            build_id,
            min_from,
            add_keys,
            out,
            parts,
        } => {
            let mut m = Manifest {
                format: FORMAT_VERSION,
                board,
                version,
                build_id,
                min_from,
                block_size: BLOCK_SIZE as u32,
                group_blocks: GROUP_BLOCKS as u32,
                add_keys: Vec::new(),
                parts: Vec::new(),
            };
            for path in add_keys {
                let key = read_key(&path)?;
                m.add_keys.push(key.base64().to_string());
                eprintln!("bundle: the new system also trusts {}", key.id);
            }
            for (name, path) in parse_parts(&parts)? {
                let file = File::open(&path).with_context(|| format!("{}", path.display()))?;
                m.parts.push(describe_part(&name, BufReader::new(file))?);
            }
            m.check(FORMAT_VERSION)?;
            std::fs::write(&out, m.to_bytes()).with_context(|| format!("{}", out.display()))?;
            Ok(())
        }
        BundleCmd::Pack {
            manifest,
            signature,
            out,
            parts,
        } => {
            let bytes = std::fs::read(&manifest).with_context(|| manifest.display().to_string())?;
            let sig = std::fs::read_to_string(&signature)
                .with_context(|| signature.display().to_string())?;
            let paths = parse_parts(&parts)?;
            let file = File::create(&out).with_context(|| out.display().to_string())?;
            let info = write_bundle(BufWriter::new(file), &bytes, &sig, |p| {
                let path = paths.iter().find(|(n, _)| *n == p.name).map(|(_, p)| p);
                let path = path.ok_or_else(|| {
                    io::Error::other(format!("no file given for part {}", p.name))
                })?;
                File::open(path).map(BufReader::new)
            });
            if info.is_err() {
                let _ = std::fs::remove_file(&out);
            }
            eprintln!("bundle: {} ({} bytes)", out.display(), info?.size);
            Ok(())
        }
        BundleCmd::Verify {
            keys,
            board,
            running,
            file,
        } => verify(&keys, board.zip(running), &file),
    }
}

fn verify(keys: &[PathBuf], node: Option<(String, String)>, file: &Path) -> Result<()> {
    let mut trusted = TrustedKeys::default();
    for path in keys {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pub"))
                .collect();
            entries.sort();
            for p in entries {
                trusted.add(read_key(&p)?);
            }
        } else {
            trusted.add(read_key(path)?);
        }
    }
    if trusted.keys().is_empty() {
        bail!("no trusted keys");
    }
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(|| file.display().to_string())?)
    };
    let mut reader = BundleReader::open(BufReader::with_capacity(1 << 20, input), &trusted)?;
    let m = reader.manifest().clone();
    // writeln!, not println!: a closed pipe (`| head`) is an error, not a panic.
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "bundle {} {} (build {:?}, from {}), signed by {}",
        m.board,
        m.version,
        m.build_id,
        m.min_from,
        reader.signer()
    )?;
    if let Some((board, version)) = node {
        let accept = decide(&m, &Running { board, version })?;
        writeln!(out, "a node running it would accept it: {accept:?}")?;
    }
    for part in &m.parts {
        reader.copy_part(&mut io::sink())?;
        writeln!(
            out,
            "  {} {} bytes, root {}",
            part.name, part.size, part.root
        )?;
    }
    reader.finish()?;
    writeln!(out, "ok")?;
    Ok(())
}

fn read_key(path: &Path) -> Result<TrustedKey> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    Ok(TrustedKey::from_pub_file(&name, &text)?)
}

fn parse_parts(args: &[String]) -> Result<Vec<(String, PathBuf)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                Ok((name.to_string(), PathBuf::from(path)))
            }
            _ => bail!("{a:?}: a part is NAME=PATH (rootfs=out/rootfs.squashfs)"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_name_equals_path() {
        let p = parse_parts(&["rootfs=a/b.squashfs".into(), "vmlinuz=/k".into()]).unwrap();
        assert_eq!(p[0], ("rootfs".into(), PathBuf::from("a/b.squashfs")));
        assert!(parse_parts(&["rootfs".into()]).is_err());
        assert!(parse_parts(&["=x".into()]).is_err());
    }
}
