//! A minimal writer for the "newc" cpio format the kernel unpacks as an initramfs.
use std::io::Write;

pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

const DIR: u32 = 0o040755;
const FILE: u32 = 0o100644;
const EXEC: u32 = 0o100755;
const SYMLINK: u32 = 0o120777;

impl Cpio {
    pub fn new() -> Self {
        Cpio { out: Vec::new(), ino: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let name_z = format!("{name}\0");
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name_z.len(),
            0
        );
        self.ino += 1;
        self.out.write_all(header.as_bytes()).unwrap();
        self.out.write_all(name_z.as_bytes()).unwrap();
        self.pad();
        self.out.write_all(data).unwrap();
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, DIR, &[]);
    }

    pub fn file(&mut self, name: &str, data: &[u8], executable: bool) {
        self.entry(name, if executable { EXEC } else { FILE }, data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, SYMLINK, target.as_bytes());
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}
