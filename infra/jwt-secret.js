// The default of the `jwtSecret` parameter: a CloudFormation reference to the SSM parameter
// /<service>/<stage>/jwt-secret, but only when the deploy uses it (auth on, no JWKS URL). With
// `auth=off` or a `jwksUrl`, the template carries no reference, so the stack deploys without the
// parameter existing.
module.exports = async ({ resolveVariable }) => {
  const [auth, jwksUrl, service, stage] = await Promise.all([
    resolveVariable('param:auth'),
    resolveVariable('param:jwksUrl'),
    resolveVariable('self:service'),
    resolveVariable('sls:stage'),
  ]);
  if (auth !== 'on' || jwksUrl !== '') return '';
  return `{{resolve:ssm:/${service}/${stage}/jwt-secret}}`;
};
