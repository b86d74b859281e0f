#!/bin/sh
# Runs in the guest (labpower-vmtest.service) from the 9p share at /mnt/share: install
# labpower the way a lab host would, then run the scenario. Its exit status is the test's.
set -eu
S=/mnt/share
OUT=$S/out
exec >"$OUT/boot.log" 2>&1
set -x
# the code under test: the wheels built on the host, into the image's venv (pip's own
# start-up costs ~15 s under emulation: install_wheels.py does the same for pure wheels);
# in the background, while the rest is set up
/opt/labpower/bin/python "$S"/tests/vm/guest/install_wheels.py "$S"/wheels/*.whl &
install=$!
# The machine's own devices (the USB controller's root hubs) are set up before labpower's
# rules arrive, as on a lab host where labpower is installed after boot: the scenario checks
# that plugging a board, and nothing else, starts labpowerd.
udevadm settle
# packaging/ and udev/, where a Debian package would put them
cp "$S"/packaging/systemd/labpowerd.service "$S"/packaging/systemd/labpowerd.socket /etc/systemd/system/
# the lab host switches hub ports (usbhub): the shipped drop-in that lets the daemon do so
mkdir -p /etc/systemd/system/labpowerd.service.d
cp "$S"/packaging/systemd-dropins/labpowerd.service.d/usbhub.conf /etc/systemd/system/labpowerd.service.d/
cp "$S"/packaging/sysusers.d/labpower.conf /usr/lib/sysusers.d/
cp "$S"/packaging/tmpfiles.d/labpower.conf /usr/lib/tmpfiles.d/
# the group first: udev resolves GROUP="labpower" when it reads the rules
systemd-sysusers
systemd-tmpfiles --create /usr/lib/tmpfiles.d/labpower.conf
cp "$S"/udev/*.rules /etc/udev/rules.d/
udevadm control --reload
systemctl daemon-reload &
reload=$!
cp "$S"/tests/vm/guest/labpowerd.toml /etc/labpower/labpowerd.toml
useradd --create-home --groups labpower alice
# uhid: the HID board; virtio_console: the control channel to the host (boot.sh runs early,
# maybe before udev loaded it)
modprobe -a uhid virtio_console
wait "$install"
for b in labpowerd labpower labpower-sim labpower-discover; do
    ln -sf /opt/labpower/bin/$b /usr/bin/$b
done
wait "$reload"
status=0
/opt/labpower/bin/python "$S"/tests/vm/guest/scenario.py "$OUT" || status=$?
# the hub with per-port power switching: its own script and exit status, which
# tests/vm/test_labhost.py checks in its own test
usbhub=0
/opt/labpower/bin/python "$S"/tests/vm/guest/usbhub.py "$OUT" || usbhub=$?
echo "$usbhub" > "$OUT/usbhub-status"
# GPIO relays on a gpio-sim chip and an ltc4151 meter on i2c-stub: a result file and a status
# of their own (tests/vm/guest/localbus.py)
localbus=0
/opt/labpower/bin/python "$S"/tests/vm/guest/localbus.py "$S" "$OUT" || localbus=$?
echo "$localbus" > "$OUT/localbus.status"
journalctl -o json --no-pager > "$OUT/journal.json" || true
echo "$status" > "$OUT/status"
exit "$status"
