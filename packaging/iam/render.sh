#!/bin/sh
# render.sh: writes the two IAM policies of an irsafs role for IRSA, from the templates beside
# this script, after checking every input. POSIX sh and the base tools (sed, tr, grep): no
# python, no jq.
#
#   render.sh --account 111122223333 \
#             --issuer https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE \
#             --namespace my-namespace --service-account my-app \
#             --bucket my-bucket [--prefix data/] [--out DIR | --print trust|permissions]
#
# --out DIR writes DIR/trust-policy.json and DIR/permissions-policy.json; --print writes one
# policy to stdout (for "$(render.sh ... --print trust)"); with neither, both go to stdout,
# each after a '# FILE' line. Exit status: 0 done, 2 a missing or invalid input (one line on
# stderr says which and why), 1 a file that cannot be read or written.
set -eu
LC_ALL=C
export LC_ALL

me=render.sh
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

usage() {
	cat <<EOF
usage: $me --account ID --issuer ISSUER --namespace NS --service-account SA
                 --bucket BUCKET [--prefix PREFIX] [--out DIR | --print trust|permissions]

  --account ID           the 12-digit AWS account id that owns the role and the OIDC provider
  --issuer ISSUER        the cluster's OIDC issuer, with or without https:// (aws eks
                         describe-cluster --name C --query cluster.identity.oidc.issuer)
  --namespace NS         namespace of the pod's service account
  --service-account SA   name of the service account (the pod's serviceAccountName)
  --bucket BUCKET        the bucket irsafs mounts
  --prefix PREFIX        only keys under PREFIX (must end in '/'); default: the whole bucket
  --out DIR              write DIR/trust-policy.json and DIR/permissions-policy.json
  --print WHICH          print only the trust or the permissions policy to stdout
EOF
}

fail() {
	echo "$me: $*" >&2
	exit 2
}

# --- Arguments: --name VALUE or --name=VALUE ---------------------------------------------------

account='' issuer='' namespace='' sa='' bucket='' prefix='' out='' print=''
have_account=false have_issuer=false have_namespace=false have_sa=false have_bucket=false
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	-h | --help) usage; exit 0 ;;
	--*=*) value=${opt#*=}; opt=${opt%%=*}; shift ;;
	--account | --issuer | --namespace | --service-account | --bucket | --prefix | --out | --print)
		[ $# -ge 2 ] || fail "$opt needs a value (see '$me --help')"
		value=$2
		shift 2
		;;
	*) fail "unknown argument '$opt' (see '$me --help')" ;;
	esac
	case $opt in
	--account) account=$value; have_account=true ;;
	--issuer) issuer=$value; have_issuer=true ;;
	--namespace) namespace=$value; have_namespace=true ;;
	--service-account) sa=$value; have_sa=true ;;
	--bucket) bucket=$value; have_bucket=true ;;
	--prefix) prefix=$value ;;
	--out) out=$value ;;
	--print) print=$value ;;
	*) fail "unknown option '$opt' (see '$me --help')" ;;
	esac
done

for required in account issuer namespace service-account bucket; do
	case $required in
	account) $have_account ;;
	issuer) $have_issuer ;;
	namespace) $have_namespace ;;
	service-account) $have_sa ;;
	bucket) $have_bucket ;;
	esac || fail "missing --$required (see '$me --help')"
done
[ -z "$out" ] || [ -z "$print" ] || fail "give --out or --print, not both"
case $print in
'' | trust | permissions) ;;
*) fail "--print '$print' must be 'trust' or 'permissions'" ;;
esac

# --- Validation. Every value ends up inside JSON strings and sed replacements, so each check
# --- also rules out '"', '\', '&', '|' and control characters.

# 12 digits.
case $account in
*[!0-9]*) fail "--account '$account' is not a 12-digit AWS account id" ;;
esac
[ ${#account} -eq 12 ] || fail "--account '$account' is not a 12-digit AWS account id"

# The issuer as IAM names it: host/path, no scheme, no trailing '/'.
case $issuer in
https://*) issuer=${issuer#https://} ;;
*://*) fail "--issuer '$issuer': an OIDC issuer URL starts with https://" ;;
esac
while :; do
	case $issuer in
	*/) issuer=${issuer%/} ;;
	*) break ;;
	esac
done
example=oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE
case $issuer in
'') fail "--issuer is empty" ;;
*[!A-Za-z0-9./_-]* | /* | *//* | .* | */.* | *..*)
	fail "--issuer '$issuer' is not an issuer host and path such as $example"
	;;
esac
case ${issuer%%/*} in
*.*) ;;
*) fail "--issuer '$issuer' does not start with a host name such as ${example%%/*}" ;;
esac

# Kubernetes names: a namespace is a DNS label, a service account a DNS subdomain.
check_dns_name() { # what value max_length allow_dots
	case $2 in
	'') fail "$1 is empty" ;;
	*[!a-z0-9.-]*)
		if [ "$4" = yes ]; then
			fail "$1 '$2' may contain only lower-case letters, digits, '-' and '.'"
		fi
		fail "$1 '$2' may contain only lower-case letters, digits and '-'"
		;;
	[!a-z0-9]* | *[!a-z0-9])
		fail "$1 '$2' must start and end with a lower-case letter or a digit"
		;;
	*..* | *.-* | *-.*)
		fail "$1 '$2' is not a valid name ('.' separates labels of letters, digits and '-')"
		;;
	esac
	if [ "$4" != yes ]; then
		case $2 in
		*.*) fail "$1 '$2' may contain only lower-case letters, digits and '-'" ;;
		esac
	fi
	[ ${#2} -le "$3" ] || fail "$1 '$2' is longer than $3 characters"
}
check_dns_name --namespace "$namespace" 63 no
check_dns_name --service-account "$sa" 253 yes

# S3's naming rules for general purpose buckets.
bad_bucket() {
	fail "--bucket '$bucket': a bucket name $*"
}
case $bucket in
*[!a-z0-9.-]*) bad_bucket "has only lower-case letters, digits, '.' and '-'" ;;
[!a-z0-9]* | *[!a-z0-9]) bad_bucket "starts and ends with a lower-case letter or a digit" ;;
*..*) bad_bucket "has no two adjacent periods" ;;
xn--* | sthree-* | amzn-s3-demo-*) bad_bucket "does not start with a prefix S3 reserves" ;;
*-s3alias | *--ol-s3 | *.mrap | *--x-s3 | *--table-s3)
	bad_bucket "does not end with a suffix S3 reserves"
	;;
esac
if [ ${#bucket} -lt 3 ] || [ ${#bucket} -gt 63 ]; then
	bad_bucket "is 3 to 63 characters long"
fi
case $bucket in
*[!0-9.]*) ;;
*.*.*.*) bad_bucket "is not formatted as an IP address" ;;
esac

# The prefix: as irsafs takes it (ends in '/', no leading '/'), and safe in a policy: no IAM
# wildcard ('*', '?'), no policy variable ('$'), nothing that JSON or sed would need escaped.
if [ -n "$prefix" ]; then
	# The '#' sentinel keeps a trailing newline in what is left over.
	bad=$(printf '%s#' "$prefix" | tr -d "A-Za-z0-9/!_.'()=+,: -")
	bad=${bad%#}
	[ -z "$bad" ] || fail "--prefix '$prefix' holds characters this script does not put in a" \
		"policy: '$bad' (allowed: letters, digits, space and / ! - _ . ' ( ) = + , :)"
	case $prefix in
	*/) ;;
	*) fail "--prefix '$prefix' must end with '/' (try '$prefix/')" ;;
	esac
	case $prefix in
	/*)
		fail "--prefix '$prefix' starts with '/': S3 keys usually do not;" \
			"give it without the leading '/'"
		;;
	esac
	[ ${#prefix} -le 1024 ] || fail "--prefix is longer than S3's 1024-byte key limit"
fi

# --- Rendering -----------------------------------------------------------------------------

if [ -n "$prefix" ]; then
	condition='s|^@IF_PREFIX@||'
else
	condition='/^@IF_PREFIX@/d'
fi

render() { # template file -> stdout
	[ -r "$here/$1" ] || { echo "$me: cannot read the template $here/$1" >&2; exit 1; }
	rendered=$(sed -e '/^#/d' -e "$condition" \
		-e "s|@ACCOUNT_ID@|$account|g" \
		-e "s|@OIDC_ISSUER@|$issuer|g" \
		-e "s|@NAMESPACE@|$namespace|g" \
		-e "s|@SERVICE_ACCOUNT@|$sa|g" \
		-e "s|@BUCKET@|$bucket|g" \
		-e "s|@PREFIX@|$prefix|g" \
		"$here/$1")
	if printf '%s\n' "$rendered" | grep -q '@[A-Z_][A-Z_]*@'; then
		echo "$me: the template $1 has a placeholder this script does not know" >&2
		exit 1
	fi
	printf '%s\n' "$rendered"
}

trust='trust-policy.json'
permissions='permissions-policy.json'
if [ -n "$out" ]; then
	mkdir -p -- "$out" || { echo "$me: cannot create the directory $out" >&2; exit 1; }
	for name in $trust $permissions; do
		text=$(render "$name.tmpl")
		printf '%s\n' "$text" >"$out/$name" || { echo "$me: cannot write $out/$name" >&2; exit 1; }
		echo "wrote $out/$name"
	done
elif [ -n "$print" ]; then
	render "$print-policy.json.tmpl"
else
	echo "# $trust"
	render "$trust.tmpl"
	echo "# $permissions"
	render "$permissions.tmpl"
fi
