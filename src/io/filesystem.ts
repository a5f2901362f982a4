// Facts about the file system a file or folder lives on: its name (for messages that say which file
// system refused O_DIRECT), and its space (one statfs) for the checks before a save or an extract.
import * as libc from "../../ffi/libc.ts";

const FS_NAMES: Record<number, string> = {
  0xef53: "ext4",
  0x01021994: "tmpfs",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x6969: "nfs",
  0x65735546: "fuse",
  0x794c7630: "overlayfs",
  0x958458f6: "hugetlbfs",
  0x858458f6: "ramfs",
  0x2fc12fc1: "zfs",
  0x5346544e: "ntfs",
  0x4d44: "vfat",
  0x73717368: "squashfs",
  0x9fa0: "proc",
};

const nameOf = (type: number): string => FS_NAMES[type] ?? `file system type 0x${type.toString(16)}`;

export function filesystemName(fd: number, path: string): string {
  return nameOf(libc.fstatfs(fd, path).type);
}

export interface DirSpace {
  fs: string;
  freeBytes: number;
  /** 0 where the file system reports no size (ramfs): nothing to run out of. */
  totalBytes: number;
}

/** The file system holding directory `dir`: its name and space, from one statfs. */
export function dirSpace(dir: string): DirSpace {
  const fd = libc.open(dir, libc.O_RDONLY | libc.O_DIRECTORY);
  try {
    const st = libc.fstatfs(fd, dir);
    return { fs: nameOf(st.type), freeBytes: st.freeBytes, totalBytes: st.totalBytes };
  } finally {
    libc.close(fd, dir);
  }
}
