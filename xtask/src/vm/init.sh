#!/bin/sh
# PID 1 of the VM suite's guest. Builds the guest's root: the host's / shared read-only over
# virtio-9p with a tmpfs overlay on top (guest writes never reach the host), plus the per-run
# share (read-write, same path as on the host), then runs the command script the host wrote.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
SHARE=
MODULES=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    vland.share=*) SHARE="${arg#vland.share=}" ;;
    vland.modules=*) MODULES="${arg#vland.modules=}" ;;
  esac
done
halt_now() { sync; reboot -f; }
fail() { echo "vland-vm: boot failed: $*" > /dev/ttyS0; halt_now; }
while read -r m; do insmod "/modules/$m" || fail "insmod $m"; done < /modules/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /host || fail "mount of the host root"
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/data,workdir=/upper/work /newroot || fail "overlay root"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share "/newroot$SHARE" || fail "mount of the run share"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
# A fresh /run hides the host's runtime state (its /run/netns among it). /tmp is not replaced:
# the repository may live there; writes go to the overlay like everywhere else.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mount -t bpf bpf /newroot/sys/fs/bpf
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup
# The host's modprobe finds the guest kernel's modules here. The kernel's own module autoload
# runs its helper in PID 1's root (this initramfs), so it gets a wrapper that enters the guest root.
mkdir -p /newroot/usr/lib/modules
ln -sfn "$MODULES" "/newroot/usr/lib/modules/$(uname -r)"
printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe "$@"\n' > /modprobe-guest
chmod 755 /modprobe-guest
echo /modprobe-guest > /proc/sys/kernel/modprobe
echo started > "/newroot$SHARE/started"
chroot /newroot /bin/sh "$SHARE/run.sh"
halt_now
