# Sourced by the scripts that boot VMs (vm-cgroups.sh, vm-rootless.sh,
# hosts/matrix.sh): finds ../shared/vm/run-in-vm.sh beside the checkout.

# find_vm REPO WHAT: sets $vm to the VM runner ($RCONTAIN_VM, else
# shared/vm beside REPO or one level up). Without one this host cannot
# boot another layout: say so on one line, as the Rust suites do, and
# exit 0 (WHAT names what is skipped).
find_vm() {
    vm=${RCONTAIN_VM:-}
    if [ -z "$vm" ]; then
        for c in "$1/../shared/vm/run-in-vm.sh" "$1/../../shared/vm/run-in-vm.sh"; do
            if [ -x "$c" ]; then vm=$c; break; fi
        done
    fi
    if [ -z "$vm" ]; then
        echo "skipped: host lacks shared/vm/run-in-vm.sh (set RCONTAIN_VM): $2"
        exit 0
    fi
}
