#!/bin/sh
# Prints deploy/nginx.conf with this deployment's addresses and paths in place of its
# @NAME@ words. Each comes from the environment, with defaults for one host:
#
#   NGINX_LISTEN      where nginx listens            127.0.0.1:8000
#   NGINX_APP_A       the first app instance         127.0.0.1:8001
#   NGINX_APP_B       the second app instance        127.0.0.1:8002
#   NGINX_RUN_DIR     pid file and temp folders      /var/lib/switchyard-nginx
#   NGINX_ACCESS_LOG  access log                     /var/log/nginx/switchyard-access.log
#   NGINX_ERROR_LOG   error log                      /var/log/nginx/switchyard-error.log
#
# Usage: deploy/render-nginx.sh > nginx.conf   (POSIX sh, so it also runs in the
# nginx container image). The folders must exist before nginx starts.
set -eu

template="$(dirname "$0")/nginx.conf"

: "${NGINX_LISTEN:=127.0.0.1:8000}"
: "${NGINX_APP_A:=127.0.0.1:8001}"
: "${NGINX_APP_B:=127.0.0.1:8002}"
: "${NGINX_RUN_DIR:=/var/lib/switchyard-nginx}"
: "${NGINX_ACCESS_LOG:=/var/log/nginx/switchyard-access.log}"
: "${NGINX_ERROR_LOG:=/var/log/nginx/switchyard-error.log}"

# The values go into a sed replacement and into nginx's syntax: refuse what either
# would read as something else rather than write a config that means another thing.
for value in "$NGINX_LISTEN" "$NGINX_APP_A" "$NGINX_APP_B" "$NGINX_RUN_DIR" \
  "$NGINX_ACCESS_LOG" "$NGINX_ERROR_LOG"; do
  case "$value" in
    '' | *[\|\&\\\;\{\}\#\"\'\ ]* | *'
'*)
      echo "render-nginx: unusable value: '$value'" >&2
      exit 1
      ;;
  esac
done

rendered=$(sed \
  -e "s|@LISTEN@|$NGINX_LISTEN|g" \
  -e "s|@APP_A@|$NGINX_APP_A|g" \
  -e "s|@APP_B@|$NGINX_APP_B|g" \
  -e "s|@RUN_DIR@|$NGINX_RUN_DIR|g" \
  -e "s|@ACCESS_LOG@|$NGINX_ACCESS_LOG|g" \
  -e "s|@ERROR_LOG@|$NGINX_ERROR_LOG|g" \
  "$template")

if printf '%s\n' "$rendered" | grep -v '^ *#' | grep -q '@[A-Z_]*@'; then
  echo "render-nginx: $template has a placeholder this script does not fill" >&2
  exit 1
fi
printf '%s\n' "$rendered"
