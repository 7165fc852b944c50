# shellcheck shell=bash
# The host's firewall state around a test cluster, for hack/cluster.sh (make e2e-cluster) and
# hack/e2e-kind-local.sh (make e2e-kind-local): save it before the run, put it back after, check
# that nothing is left. Sourced; the caller defines log(). The state lives in a directory of the
# caller's run: iptables.rules and ip6tables.rules (iptables-save without counters or comments) and
# nft.tables (the nftables tables; with iptables' nf_tables backend, kubelet, kube-proxy, kube-router,
# dockerd and `iptables -N` make tables that outlive their chains).

# iptables-save's output without comments and packet counters, so two saves compare equal.
normalize_rules() { grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]$//; s/ +$//'; }

save_firewall() {  # save_firewall DIR
  local dir=$1 tool
  for tool in iptables ip6tables; do
    "$tool-save" 2>/dev/null | normalize_rules > "$dir/$tool.rules" || true
  done
  nft list tables 2>/dev/null | sort > "$dir/nft.tables" || true
}

# The lines of one table (`*TABLE` to its COMMIT) of a saved file.
saved_table() { sed -n "/^\*$2\$/,/^COMMIT/p" "$1"; }

restore_firewall() {  # restore_firewall DIR: every rule, chain and table not saved in DIR goes; policies come back
  local dir=$1 tool saved after table line chain policy before pass
  for tool in iptables ip6tables; do
    saved="$dir/$tool.rules" after="$dir/$tool.after"
    [ -f "$saved" ] || continue
    "$tool-save" 2>/dev/null | normalize_rules > "$after" || continue
    table=
    # Built-in chains get their policy back (dockerd may set FORWARD's to DROP); rules added to
    # chains that existed before are deleted one by one.
    while IFS= read -r line; do
      case "$line" in
        \**) table=${line#\*} ;;
        :*)
          chain=$(echo "${line#:}" | awk '{print $1}') policy=$(echo "${line#:}" | awk '{print $2}')
          before=$(saved_table "$saved" "$table" | grep "^:$chain " | awk '{print $2}' || true)
          if [ -n "$before" ] && [ "$before" != - ] && [ "$before" != "$policy" ]; then
            "$tool" -w -t "$table" -P "$chain" "$before" || log "could not restore $tool -t $table -P $chain $before"
          fi
          ;;
        -A\ *)
          chain=$(echo "$line" | awk '{print $2}')
          if saved_table "$saved" "$table" | grep -q "^:$chain " &&
            ! saved_table "$saved" "$table" | grep -qxF -- "$line"; then
            eval "$tool -w -t $table -D ${line#-A }" 2>/dev/null || log "could not delete $tool -t $table $line"
          fi
          ;;
      esac
    done < "$after"
    # Chains that did not exist before: flush all, then delete all.
    for pass in -F -X; do
      table=
      while IFS= read -r line; do
        case "$line" in
          \**) table=${line#\*} ;;
          :*)
            chain=$(echo "${line#:}" | awk '{print $1}')
            if ! saved_table "$saved" "$table" | grep -q "^:$chain "; then
              "$tool" -w -t "$table" "$pass" "$chain" 2>/dev/null || log "could not $pass $tool -t $table $chain"
            fi
            ;;
        esac
      done < "$after"
    done
  done
  # With iptables' nf_tables backend the tables themselves stay: drop those that did not exist before.
  if [ -f "$dir/nft.tables" ]; then
    nft list tables 2>/dev/null | sort | comm -23 - "$dir/nft.tables" | while read -r _ family name; do
      nft delete table "$family" "$name" || log "could not delete nft table $family $name"
    done
  fi
}

check_firewall() {  # check_firewall DIR: says what differs from the state saved in DIR; fails if anything does
  local dir=$1 ok=0 tool
  for tool in iptables ip6tables; do
    [ -f "$dir/$tool.rules" ] || continue
    if ! diff "$dir/$tool.rules" <("$tool-save" 2>/dev/null | normalize_rules) > "$dir/$tool.diff"; then
      log "$tool differs from before the run:"; cat "$dir/$tool.diff" >&2; ok=1
    fi
  done
  if [ -f "$dir/nft.tables" ] && ! diff "$dir/nft.tables" <(nft list tables 2>/dev/null | sort) >&2; then
    log "nftables tables differ from before the run"; ok=1
  fi
  return $ok
}
